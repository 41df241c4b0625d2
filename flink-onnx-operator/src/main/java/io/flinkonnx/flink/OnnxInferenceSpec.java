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

    public ModelSource model() {
        return model;
    }

    public ProviderChain providers() {
        return providers;
    }

    public SessionSettings sessionSettings() {
        return sessionSettings;
    }

    /** The configured batch axis, or null for the default rule (a symbolic or unknown first dim). */
    public Integer batchAxis() {
        return batchAxis;
    }

    public RecordEncoder<IN> encoder() {
        return encoder;
    }

    public ResultDecoder<IN, OUT> decoder() {
        return decoder;
    }

    public TypeInformation<OUT> resultType() {
        return resultType;
    }

    @Internal
    public SignatureCheck signatureCheck() {
        return signatureCheck;
    }

    /** Whether the job fails at start when an accelerator was asked for and any node would run on CPU. */
    public boolean failOnCpuFallback() {
        return failOnCpuFallback;
    }

    @Internal
    public DriftConfig<IN> drift() {
        return drift;
    }

    /** The largest input, in bytes, one record may carry; a larger one is refused before it is buffered. */
    public long maxRecordBytes() {
        return maxRecordBytes;
    }

    /** After this many batches in a row in which every run failed, the job fails with the last cause. */
    public int maxConsecutiveFailedBatches() {
        return maxConsecutiveFailedBatches;
    }

    /** Which operators share a session of the model (default {@link SessionSharing#PER_SLOT}). */
    public SessionSharing sessionSharing() {
        return sessionSharing;
    }

    /** The same spec on another provider chain. */
    public OnnxInferenceSpec<IN, OUT> withProviders(ProviderChain chain) {
        return new OnnxInferenceSpec<>(toBuilder(), chain, sessionSettings, resultType == null);
    }

    /**
     * The same spec serving another model (a new version of this one: same signature expected), e.g. for a
     * model update.
     */
    public OnnxInferenceSpec<IN, OUT> withModel(ModelSource other) {
        return new OnnxInferenceSpec<>(
                toBuilder(Objects.requireNonNull(other, "model")), providers, sessionSettings, resultType == null);
    }

    /** The same spec with other session settings. */
    public OnnxInferenceSpec<IN, OUT> withSessionSettings(SessionSettings settings) {
        return new OnnxInferenceSpec<>(toBuilder(), providers, settings, resultType == null);
    }

    @Override
    public String toString() {
        return "OnnxInferenceSpec{model=" + model + ", providers=" + providers + ", " + sessionSettings
                + (batchAxis == null ? "" : ", batchAxis=" + batchAxis) + "}";
    }

    /**
     * Builder of {@link OnnxInferenceSpec}.
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

        /** The EP chain, as text: {@code "cuda(device_id=0) > cpu"}. Default: CPU only. */
        public Builder<IN, OUT> providers(String chain) {
            return providers(ProviderChain.parse(chain));
        }

        public Builder<IN, OUT> providers(ProviderChain chain) {
            this.providers = Objects.requireNonNull(chain, "providers");
            return this;
        }

        public Builder<IN, OUT> sessionSettings(SessionSettings settings) {
            this.sessionSettings = Objects.requireNonNull(settings, "sessionSettings");
            return this;
        }

        /** Overrides the batch axis of every input and output (-1: none; default: a free first dim). */
        public Builder<IN, OUT> batchAxis(int axis) {
            if (axis < -1) {
                throw new IllegalArgumentException("batchAxis must be >= 0, or -1 for none; got " + axis);
            }
            this.batchAxis = axis;
            return this;
        }

        public Builder<IN, OUT> encoder(RecordEncoder<IN> encoder) {
            this.encoder = Objects.requireNonNull(encoder, "encoder");
            return this;
        }

        /** How outputs become results, and the results' Flink type (e.g. {@code Types.POJO(Score.class)}). */
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
         */
        public Builder<IN, OUT> failOnCpuFallback(boolean fail) {
            this.failOnCpuFallback = fail;
            return this;
        }

        /**
         * Runs {@code referenceModel} in shadow (on CPU, on the same packed inputs) for a
         * {@code sampleFraction} of batches and reports how the outputs differ: the fp32 {@code .onnx}
         * while serving a quantized or {@code .ort} model, or the same model while serving on an accelerator.
         */
        public Builder<IN, OUT> driftAgainstModel(String referenceModel, double sampleFraction) {
            this.drift = drift.withShadow(ModelSource.of(referenceModel), sampleFraction);
            return this;
        }

        /**
         * Checks the served model against ONNX golden vectors ({@code test_data_set_N/input_K.pb,
         * output_K.pb} in a local {@code folder}) at start and every {@code interval}.
         */
        public Builder<IN, OUT> driftAgainstGoldenVectors(String folder, Duration interval) {
            this.drift = drift.withGolden(folder, interval);
            return this;
        }

        /** Compares outputs with references the records carry, for a {@code sampleFraction} of batches. */
        public Builder<IN, OUT> driftAgainstRecords(ReferenceExtractor<IN> extractor, double sampleFraction) {
            this.drift = drift.withRecords(Objects.requireNonNull(extractor, "extractor"), sampleFraction);
            return this;
        }

        /** Tolerance of the drift reports (default rtol 1e-3, atol 1e-5 for floating outputs). */
        public Builder<IN, OUT> driftTolerance(DriftTolerance tolerance) {
            this.drift = drift.withTolerance(Objects.requireNonNull(tolerance, "tolerance"));
            return this;
        }

        /**
         * The largest input one record may carry, in bytes as packed (element size times values; strings
         * count their characters), > 0; default 64 MiB. A larger record is refused at encoding, before it
         * is buffered or reaches ORT: a dead letter naming its size and this bound in the batching operator
         * and SQL, a {@link RecordConversionException} in the map function.
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
         */
        public Builder<IN, OUT> maxConsecutiveFailedBatches(int batches) {
            checkArgument(batches >= 1, "maxConsecutiveFailedBatches must be >= 1, got %s", batches);
            this.maxConsecutiveFailedBatches = batches;
            return this;
        }

        /**
         * One session per slot (default) or per TaskManager ({@link SessionSharing#PER_TASK_MANAGER}: the model's
         * memory once per process, for large models on TaskManagers with several slots).
         */
        public Builder<IN, OUT> sessionSharing(SessionSharing sharing) {
            this.sessionSharing = java.util.Objects.requireNonNull(sharing, "sharing");
            return this;
        }

        Builder<IN, OUT> signatureCheck(SignatureCheck check) {
            this.signatureCheck = check;
            return this;
        }

        public OnnxInferenceSpec<IN, OUT> build() {
            if (encoder == null) {
                throw new IllegalStateException("No encoder: call encoder((record, row) -> row.put(\"input\", ...))");
            }
            if (decoder == null || resultType == null) {
                throw new IllegalStateException("No decoder: call decoder((record, out) -> ..., resultType)");
            }
            return new OnnxInferenceSpec<>(this, providers, sessionSettings, false);
        }

        /** For runtimes that produce their own types (SQL): no result TypeInformation needed. */
        @Internal
        public OnnxInferenceSpec<IN, OUT> buildUnchecked() {
            return new OnnxInferenceSpec<>(this, providers, sessionSettings, true);
        }

        /** The map function of this spec: {@code stream.map(builder.buildFunction())}. */
        public OnnxInferenceFunction<IN, OUT> buildFunction() {
            return new OnnxInferenceFunction<>(build());
        }
    }
}
