package io.flinkonnx.flink;

import static org.apache.flink.util.Preconditions.checkArgument;

import io.flinkonnx.flink.drift.DriftConfig;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.io.Serializable;
import java.time.Duration;
import java.util.Objects;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * Everything that defines an inference: the model, execution providers, session settings, batch axis,
 * and how records map to the model's inputs and outputs to results. Immutable and serializable; shared by
 * the map function and the batching operator. Built with {@link OnnxInference#builder(String)}.
 *
 * @param <IN> the record type
 * @param <OUT> the result type
 */
@PublicEvolving
public final class OnnxInferenceSpec<IN, OUT> implements Serializable {
    private static final long serialVersionUID = 1L;

    /** A check of the model's signature made once at open, before any record (fail at job start). */
    @FunctionalInterface
    @Internal
    public interface SignatureCheck extends Serializable {
        /**
         * Checks the model's signature; throws to fail the job at start.
         *
         * @param signature the loaded model's inputs and outputs
         * @param model the model's URI, to name it in the error
         */
        void check(ModelSignature signature, String model);
    }

    /** The default of {@link Builder#maxRecordBytes}: 64 MiB of input per record. */
    public static final long DEFAULT_MAX_RECORD_BYTES = 64L << 20;

    /** The default of {@link Builder#maxConsecutiveFailedBatches}. */
    public static final int DEFAULT_MAX_CONSECUTIVE_FAILED_BATCHES = 10;

    private final ModelSource model;
    private final ProviderChain providers;
    private final SessionSettings sessionSettings;
    private final Integer batchAxis;
    private final RecordEncoder<IN> encoder;
    private final ResultDecoder<IN, OUT> decoder;
    private final TypeInformation<OUT> resultType;
    private final SignatureCheck signatureCheck;
    private final boolean failOnCpuFallback;
    private final DriftConfig<IN> drift;
    private final long maxRecordBytes;
    private final int maxConsecutiveFailedBatches;
    private final SessionSharing sessionSharing;

    private OnnxInferenceSpec(
            Builder<IN, OUT> b, ProviderChain providers, SessionSettings sessionSettings, boolean untypedResult) {
        this.model = Objects.requireNonNull(b.model, "model");
        this.providers = Objects.requireNonNull(providers, "providers");
        this.sessionSettings = Objects.requireNonNull(sessionSettings, "sessionSettings");
        this.batchAxis = b.batchAxis;
        this.encoder = Objects.requireNonNull(b.encoder, "encoder: say how records become inputs");
        this.decoder = Objects.requireNonNull(b.decoder, "decoder: say how outputs become results");
        this.resultType = untypedResult ? b.resultType : Objects.requireNonNull(b.resultType, "resultType");
        this.signatureCheck = b.signatureCheck;
        this.failOnCpuFallback = b.failOnCpuFallback;
        this.drift = b.drift;
        this.maxRecordBytes = b.maxRecordBytes;
        this.maxConsecutiveFailedBatches = b.maxConsecutiveFailedBatches;
        this.sessionSharing = b.sessionSharing;
    }

    /** A builder holding this spec's settings, to derive a changed copy. */
    private Builder<IN, OUT> toBuilder() {
        return toBuilder(model);
    }

    private Builder<IN, OUT> toBuilder(ModelSource model) {
        Builder<IN, OUT> b = new Builder<>(model);
        b.providers = providers;
        b.sessionSettings = sessionSettings;
        b.batchAxis = batchAxis;
        b.encoder = encoder;
        b.decoder = decoder;
        b.resultType = resultType;
        b.signatureCheck = signatureCheck;
        b.failOnCpuFallback = failOnCpuFallback;
        b.drift = drift;
        b.maxRecordBytes = maxRecordBytes;
        b.maxConsecutiveFailedBatches = maxConsecutiveFailedBatches;
        b.sessionSharing = sessionSharing;
        return b;
    }

    /**
     * The model this spec serves.
     *
     * @return the model's source (URI, optional sha256)
     */
    public ModelSource model() {
        return model;
    }

    /**
     * The execution providers the session is created with, in order of preference.
     *
     * @return the EP chain (default: CPU only)
     */
    public ProviderChain providers() {
        return providers;
    }

    /**
     * The ORT session settings (threads, optimization level, config entries).
     *
     * @return the session settings (default: {@link SessionSettings#defaults()})
     */
    public SessionSettings sessionSettings() {
        return sessionSettings;
    }

    /**
     * The configured batch axis, or null for the default rule (a symbolic or unknown first dim).
     *
     * @return the batch axis of every input and output, -1 for none, or null for the default rule
     */
    public Integer batchAxis() {
        return batchAxis;
    }

    /**
     * How a record becomes the model's inputs.
     *
     * @return the record encoder
     */
    public RecordEncoder<IN> encoder() {
        return encoder;
    }

    /**
     * How the model's outputs for a record become its result.
     *
     * @return the result decoder
     */
    public ResultDecoder<IN, OUT> decoder() {
        return decoder;
    }

    /**
     * The Flink type of the results.
     *
     * @return the result type, or null for a spec built by {@link Builder#buildUnchecked()}
     */
    public TypeInformation<OUT> resultType() {
        return resultType;
    }

    /**
     * The check of the model's signature made at open.
     *
     * @return the signature check, or null for none
     */
    @Internal
    public SignatureCheck signatureCheck() {
        return signatureCheck;
    }

    /**
     * Whether the job fails at start when an accelerator was asked for and any node would run on CPU.
     *
     * @return true to fail on CPU fallback (default false)
     */
    public boolean failOnCpuFallback() {
        return failOnCpuFallback;
    }

    /**
     * The drift checks configured on this spec.
     *
     * @return the drift configuration ({@link DriftConfig#none()} when no check was asked for)
     */
    @Internal
    public DriftConfig<IN> drift() {
        return drift;
    }

    /**
     * The largest input, in bytes, one record may carry; a larger one is refused before it is buffered.
     *
     * @return the per-record bound in bytes, > 0 (default {@link #DEFAULT_MAX_RECORD_BYTES})
     */
    public long maxRecordBytes() {
        return maxRecordBytes;
    }

    /**
     * After this many batches in a row in which every run failed, the session is probed; if the probe fails
     * too, the job fails with the last cause (see {@link Builder#maxConsecutiveFailedBatches}).
     *
     * @return the number of batches, >= 1 (default {@link #DEFAULT_MAX_CONSECUTIVE_FAILED_BATCHES})
     */
    public int maxConsecutiveFailedBatches() {
        return maxConsecutiveFailedBatches;
    }

    /**
     * Which operators share a session of the model (default {@link SessionSharing#PER_SLOT}).
     *
     * @return the session sharing
     */
    public SessionSharing sessionSharing() {
        return sessionSharing;
    }

    /**
     * The same spec on another provider chain.
     *
     * @param chain the EP chain to use instead, not null
     * @return a new spec; this one is unchanged
     * @throws NullPointerException when {@code chain} is null
     */
    public OnnxInferenceSpec<IN, OUT> withProviders(ProviderChain chain) {
        return new OnnxInferenceSpec<>(toBuilder(), chain, sessionSettings, resultType == null);
    }

    /**
     * The same spec serving another model (a new version of this one: same signature expected), e.g. for a
     * model update.
     *
     * @param other the model to serve instead, not null
     * @return a new spec; this one is unchanged
     * @throws NullPointerException when {@code other} is null
     */
    public OnnxInferenceSpec<IN, OUT> withModel(ModelSource other) {
        return new OnnxInferenceSpec<>(
                toBuilder(Objects.requireNonNull(other, "model")), providers, sessionSettings, resultType == null);
    }

    /**
     * The same spec with other session settings.
     *
     * @param settings the session settings to use instead, not null
     * @return a new spec; this one is unchanged
     * @throws NullPointerException when {@code settings} is null
     */
    public OnnxInferenceSpec<IN, OUT> withSessionSettings(SessionSettings settings) {
        return new OnnxInferenceSpec<>(toBuilder(), providers, settings, resultType == null);
    }

    @Override
    public String toString() {
        return "OnnxInferenceSpec{model=" + model + ", providers=" + providers + ", " + sessionSettings
                + (batchAxis == null ? "" : ", batchAxis=" + batchAxis) + "}";
    }

    /**
     * Builder of {@link OnnxInferenceSpec}, started by {@link OnnxInference#builder(String)}. An encoder and a
     * decoder are required; everything else has a default.
     *
     * <pre>{@code
     * OnnxInferenceSpec<Txn, Scored> spec = OnnxInference.<Txn>builder("s3://models/fraud.onnx")
     *         .providers("cuda > cpu")
     *         .encoder((txn, row) -> row.put("features", txn.features()))
     *         .decoder((txn, out) -> new Scored(txn.id(), out.floats("score")[0]), Types.POJO(Scored.class))
     *         .build();
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type (fixed by {@link #decoder})
     */
    public static final class Builder<IN, OUT> {
        private final ModelSource model;
        private ProviderChain providers = ProviderChain.cpu();
        private SessionSettings sessionSettings = SessionSettings.defaults();
        private Integer batchAxis;
        private RecordEncoder<IN> encoder;
        private ResultDecoder<IN, OUT> decoder;
        private TypeInformation<OUT> resultType;
        private SignatureCheck signatureCheck;
        private boolean failOnCpuFallback;
        private DriftConfig<IN> drift = DriftConfig.none();
        private long maxRecordBytes = DEFAULT_MAX_RECORD_BYTES;
        private int maxConsecutiveFailedBatches = DEFAULT_MAX_CONSECUTIVE_FAILED_BATCHES;
        private SessionSharing sessionSharing = SessionSharing.PER_SLOT;

        Builder(ModelSource model) {
            this.model = Objects.requireNonNull(model, "model");
        }

        /**
         * The EP chain, as text: {@code "cuda(device_id=0) > cpu"}. Default: CPU only.
         *
         * @param chain the chain in {@link ProviderChain#parse} syntax, not null
         * @return this builder
         * @throws IllegalArgumentException when {@code chain} names an unknown EP or option
         * @throws NullPointerException when {@code chain} is null
         */
        public Builder<IN, OUT> providers(String chain) {
            return providers(ProviderChain.parse(chain));
        }

        /**
         * The EP chain. Default: CPU only.
         *
         * @param chain the execution providers in order of preference, not null
         * @return this builder
         * @throws NullPointerException when {@code chain} is null
         */
        public Builder<IN, OUT> providers(ProviderChain chain) {
            this.providers = Objects.requireNonNull(chain, "providers");
            return this;
        }

        /**
         * The ORT session settings. Default: {@link SessionSettings#defaults()}.
         *
         * @param settings the session settings, not null
         * @return this builder
         * @throws NullPointerException when {@code settings} is null
         */
        public Builder<IN, OUT> sessionSettings(SessionSettings settings) {
            this.sessionSettings = Objects.requireNonNull(settings, "sessionSettings");
            return this;
        }

        /**
         * Overrides the batch axis of every input and output (-1: none; default: a free first dim).
         *
         * @param axis the batch axis, >= 0, or -1 for none
         * @return this builder
         * @throws IllegalArgumentException when {@code axis} is below -1
         */
        public Builder<IN, OUT> batchAxis(int axis) {
            if (axis < -1) {
                throw new IllegalArgumentException("batchAxis must be >= 0, or -1 for none; got " + axis);
            }
            this.batchAxis = axis;
            return this;
        }

        /**
         * How a record becomes the model's inputs (required).
         *
         * @param encoder puts a record's values into an {@link InputRow}, not null
         * @return this builder
         * @throws NullPointerException when {@code encoder} is null
         */
        public Builder<IN, OUT> encoder(RecordEncoder<IN> encoder) {
            this.encoder = Objects.requireNonNull(encoder, "encoder");
            return this;
        }

        /**
         * How outputs become results, and the results' Flink type (e.g. {@code Types.POJO(Score.class)}); required.
         *
         * @param <R> the result type
         * @param decoder makes a record's result from its {@link OutputRow}, not null
         * @param resultType the results' Flink type; required by {@link #build()}
         * @return this builder, typed for results of {@code R}
         * @throws NullPointerException when {@code decoder} is null
         */
        public <R> Builder<IN, R> decoder(ResultDecoder<IN, R> decoder, TypeInformation<R> resultType) {
            @SuppressWarnings("unchecked")
            Builder<IN, R> self = (Builder<IN, R>) this;
            self.decoder = Objects.requireNonNull(decoder, "decoder");
            self.resultType = resultType;
            return self;
        }

        /**
         * Fails the job at start, listing the nodes, when an accelerator was asked for and any node of the
         * optimized graph would run on CPU (or the accelerator could not be added at all). ORT's own
         * {@code session.disable_cpu_ep_fallback=1} config entry is the stricter alternative: it refuses
         * the session outright.
         *
         * @param fail true to fail the job on CPU fallback (default false)
         * @return this builder
         */
        public Builder<IN, OUT> failOnCpuFallback(boolean fail) {
            this.failOnCpuFallback = fail;
            return this;
        }

        /**
         * Runs {@code referenceModel} in shadow (on CPU, on the same packed inputs) for a
         * {@code sampleFraction} of batches and reports how the outputs differ: the fp32 {@code .onnx}
         * while serving a quantized or {@code .ort} model, or the same model while serving on an accelerator.
         *
         * @param referenceModel the URI of the reference model, not blank
         * @param sampleFraction the fraction of batches compared, in (0, 1]
         * @return this builder
         * @throws IllegalArgumentException when {@code referenceModel} is blank or {@code sampleFraction} is not
         *     in (0, 1]
         * @throws NullPointerException when {@code referenceModel} is null
         */
        public Builder<IN, OUT> driftAgainstModel(String referenceModel, double sampleFraction) {
            this.drift = drift.withShadow(ModelSource.of(referenceModel), sampleFraction);
            return this;
        }

        /**
         * Checks the served model against ONNX golden vectors ({@code test_data_set_N/input_K.pb,
         * output_K.pb} in a local {@code folder}) at start and every {@code interval}.
         *
         * @param folder the local folder holding the {@code test_data_set_N} folders, not blank
         * @param interval how often the check runs again, > 0
         * @return this builder
         * @throws IllegalArgumentException when {@code folder} is null or blank, or {@code interval} is null,
         *     zero or negative
         */
        public Builder<IN, OUT> driftAgainstGoldenVectors(String folder, Duration interval) {
            this.drift = drift.withGolden(folder, interval);
            return this;
        }

        /**
         * Compares outputs with references the records carry, for a {@code sampleFraction} of batches.
         *
         * @param extractor reads a record's reference outputs, not null
         * @param sampleFraction the fraction of batches compared, in (0, 1]
         * @return this builder
         * @throws IllegalArgumentException when {@code sampleFraction} is not in (0, 1]
         * @throws NullPointerException when {@code extractor} is null
         */
        public Builder<IN, OUT> driftAgainstRecords(ReferenceExtractor<IN> extractor, double sampleFraction) {
            this.drift = drift.withRecords(Objects.requireNonNull(extractor, "extractor"), sampleFraction);
            return this;
        }

        /**
         * Tolerance of the drift reports (default rtol 1e-3, atol 1e-5 for floating outputs).
         *
         * @param tolerance how far outputs may be from their reference, not null
         * @return this builder
         * @throws NullPointerException when {@code tolerance} is null
         */
        public Builder<IN, OUT> driftTolerance(DriftTolerance tolerance) {
            this.drift = drift.withTolerance(Objects.requireNonNull(tolerance, "tolerance"));
            return this;
        }

        /**
         * The largest input one record may carry, in bytes as packed (element size times values; strings
         * count their characters), > 0; default 64 MiB. A larger record is refused at encoding, before it
         * is buffered or reaches ORT: a dead letter naming its size and this bound in the batching operator
         * and SQL, a {@link RecordConversionException} in the map function.
         *
         * @param bytes the largest input of one record, in bytes, at least 1
         * @return this builder
         * @throws IllegalArgumentException when {@code bytes} is 0 or negative
         */
        public Builder<IN, OUT> maxRecordBytes(long bytes) {
            checkArgument(bytes > 0, "maxRecordBytes must be > 0 bytes, got %s", bytes);
            this.maxRecordBytes = bytes;
            return this;
        }

        /**
         * How many batches in a row may fail in every run before the session is probed, >= 1; default 10. A
         * record that fails alone is a dead letter; a model that fails on everything (a lost device, a
         * corrupted session) is not a data problem, and restarting the job (which reloads the session, falling
         * back along the EP chain) is the cure. The probe is an input known to run on the session: a record that
         * scored on it earlier, else the synthetic input its warm-up ran at load. If the probe fails too, the job
         * fails with {@link io.flinkonnx.flink.SystemicFailureException}; if it runs, or no input is known to run
         * (nothing has scored yet and the model cannot run the warm-up's length of 1, as a convolution or a
         * reflect pad), the records go on as dead letters. A batch of one record counts as a batch.
         *
         * @param batches the number of wholly failed batches in a row before the probe, at least 1
         * @return this builder
         * @throws IllegalArgumentException when {@code batches} is below 1
         */
        public Builder<IN, OUT> maxConsecutiveFailedBatches(int batches) {
            checkArgument(batches >= 1, "maxConsecutiveFailedBatches must be >= 1, got %s", batches);
            this.maxConsecutiveFailedBatches = batches;
            return this;
        }

        /**
         * One session per slot (default) or per TaskManager ({@link SessionSharing#PER_TASK_MANAGER}: the model's
         * memory once per process, for large models on TaskManagers with several slots).
         *
         * @param sharing which operators share a session, not null
         * @return this builder
         * @throws NullPointerException when {@code sharing} is null
         */
        public Builder<IN, OUT> sessionSharing(SessionSharing sharing) {
            this.sessionSharing = java.util.Objects.requireNonNull(sharing, "sharing");
            return this;
        }

        Builder<IN, OUT> signatureCheck(SignatureCheck check) {
            this.signatureCheck = check;
            return this;
        }

        /**
         * Builds the spec.
         *
         * @return the immutable spec
         * @throws IllegalStateException when no {@link #encoder} or no {@link #decoder} (with its result type)
         *     was given
         */
        public OnnxInferenceSpec<IN, OUT> build() {
            if (encoder == null) {
                throw new IllegalStateException("No encoder: call encoder((record, row) -> row.put(\"input\", ...))");
            }
            if (decoder == null || resultType == null) {
                throw new IllegalStateException("No decoder: call decoder((record, out) -> ..., resultType)");
            }
            return new OnnxInferenceSpec<>(this, providers, sessionSettings, false);
        }

        /**
         * For runtimes that produce their own types (SQL): no result TypeInformation needed.
         *
         * @return the immutable spec, its {@link OnnxInferenceSpec#resultType()} possibly null
         * @throws NullPointerException when no encoder or no decoder was given
         */
        @Internal
        public OnnxInferenceSpec<IN, OUT> buildUnchecked() {
            return new OnnxInferenceSpec<>(this, providers, sessionSettings, true);
        }

        /**
         * The map function of this spec: {@code stream.map(builder.buildFunction())}.
         *
         * @return a new map function scoring each record with the built spec
         * @throws IllegalStateException as {@link #build()}, when no encoder or decoder was given
         */
        public OnnxInferenceFunction<IN, OUT> buildFunction() {
            return new OnnxInferenceFunction<>(build());
        }
    }
}
