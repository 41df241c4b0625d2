package io.flinkonnx.flink;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;

/**
 * The engine behind every entry point: acquires the slot's shared session, converts records to tensors
 * (one reused {@link RecordInputs} per batch row) and outputs to results, and releases the session. Not
 * thread-safe: one per operator instance.
 */
final class InferenceRunner<IN, OUT> implements AutoCloseable {
    static final String METRIC_GROUP = "onnx";
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(InferenceRunner.class);

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final String modelName;
    private SharedSession shared;
    private ModelSignature signature;
    private TensorPacker packer;
    private RecordInputs[] rows;
    private BatchOutputs outputs;
    private int maskInput = -1;
    private FallbackReport fallbackReport;
    private DriftMonitor<IN> drift;
    private final Map<Integer, Object> maskOnes = new HashMap<>();

    InferenceRunner(OnnxInferenceSpec<IN, OUT> spec) {
        this.spec = spec;
        this.modelName = spec.model().uri();
    }

    /** {@link #open(String, int, MetricGroup, int, BatchPolicy)} for one record per run. */
    void open(String slot, int subtask, MetricGroup metrics) throws Exception {
        open(slot, subtask, metrics, 1, BatchPolicy.defaults());
    }

    /**
     * Fetches and checks the model, then joins (or opens) the session of {@code slot}, ready for runs of
     * up to {@code maxRows} records. Fails at job start on a bad model or signature, naming the model and
     * the cause.
     */
    void open(String slot, int subtask, MetricGroup metrics, int maxRows, BatchPolicy policy) throws Exception {
        shared = acquire(spec.model(), slot, spec.providers(), spec.sessionSettings());
        try {
            signature = spec.batchAxis() == null ? shared.signature() : shared.signature().withBatchAxis(spec.batchAxis());
            if (spec.signatureCheck() != null) {
                spec.signatureCheck().check(signature, modelName);
            }
            List<TensorSpec> inputs = signature.inputs();
            for (TensorSpec output : signature.outputs()) {
                if (output.kind() == TensorSpec.Kind.OPTIONAL) {
                    throw new IllegalArgumentException("Model " + modelName + " has output " + output + ": ONNX Runtime's"
                            + " Java API cannot return OPTIONAL values (the run crashes the JVM in ORT 1.24)");
                }
            }
            for (TensorSpec input : inputs) {
                if (input.kind() != TensorSpec.Kind.TENSOR || !input.elementType().isSupportedForRecords()) {
                    throw new IllegalArgumentException("Model " + modelName + " has input " + input
                            + ", which records cannot feed yet (supported: tensors of FLOAT, DOUBLE, INT64, INT32,"
                            + " INT16, INT8, UINT8, BOOL, STRING)");
                }
                if (input.name().equals(policy.attentionMaskInput())) {
                    maskInput = inputs.indexOf(input);
                }
            }
            packer = new TensorPacker(OrtRuntime.env(), inputs, policy.padValue(), maskInput);
            rows = new RecordInputs[maxRows];
            for (int i = 0; i < maxRows; i++) {
                rows[i] = new RecordInputs(modelName, inputs);
            }
            outputs = new BatchOutputs(modelName, signature.outputs());
            fallbackReport = FallbackReport.of(modelName, shared.modelSha256(), subtask, shared.resolution(),
                    shared.placement(), shared.placementNote());
            if (fallbackReport.fellBackToCpu()) {
                LOG.warn("Execution provider fallback: {}", fallbackReport.summary());
            } else {
                LOG.info("Execution providers: {}", fallbackReport.summary());
            }
            if (spec.failOnCpuFallback() && (fallbackReport.fellBackToCpu()
                    || (!fallbackReport.preferred.equals("cpu") && fallbackReport.verdict == FallbackReport.Verdict.UNKNOWN))) {
                throw new IllegalStateException("Model " + modelName + " asked for " + fallbackReport.requested
                        + " with failOnCpuFallback, but " + (fallbackReport.nodes.isEmpty()
                                ? "placement could not be checked (" + fallbackReport.note + ")"
                                : fallbackReport.nodesOnCpu + " of " + fallbackReport.nodes.size() + " nodes would run on"
                                        + " cpu: " + fallbackReport.cpuNodes())
                        + (fallbackReport.skipped.isEmpty() ? "" : "; skipped: " + fallbackReport.skipped));
            }
            registerMetrics(metrics);
            drift = new DriftMonitor<>(spec.drift(), this, subtask);
            if (drift.enabled()) {
                drift.open(slot, metrics, policy.padValue());
            }
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    /**
     * The slot's session for {@code source}. A pinned model's key is known before fetching, so only the
     * first user of the slot fetches it (one download per slot, not per operator); an unpinned model is
     * fetched to learn its digest, since the bytes behind a URI may change.
     */
    static SharedSession acquire(ModelSource source, String slot, ProviderChain providers, SessionSettings settings)
            throws Exception {
        if (source.sha256().isPresent()) {
            SessionRegistry.Key key = new SessionRegistry.Key(slot, source.sha256().get(), providers, settings);
            return SessionRegistry.INSTANCE.acquire(key, k -> {
                try (LocalModel model = source.fetch()) {
                    return SessionLoader.load(k, model, providers, settings);
                }
            });
        }
        try (LocalModel model = source.fetch()) {
            SessionRegistry.Key key = new SessionRegistry.Key(slot, model.sha256(), providers, settings);
            return SessionRegistry.INSTANCE.acquire(key, k -> SessionLoader.load(k, model, providers, settings));
        }
    }

    private void registerMetrics(MetricGroup metrics) {
        if (metrics == null) {
            return;
        }
        long loadTime = shared.loadTimeMillis();
        long size = shared.modelSizeBytes();
        metrics.gauge("load_model_latency_milli_secs", (Gauge<Long>) () -> loadTime);
        metrics.gauge("model_byte_size", (Gauge<Long>) () -> size);
        metrics.gauge("openSessions", (Gauge<Integer>) SessionRegistry.INSTANCE::openSessions);
        int nodesOnCpu = fallbackReport.nodesOnCpu;
        double cpuTime = fallbackReport.cpuTimeFraction;
        metrics.gauge("nodes_on_cpu", (Gauge<Integer>) () -> nodesOnCpu);
        metrics.gauge("cpu_time_fraction", (Gauge<Double>) () -> cpuTime);
    }

    /**
     * Whether several records can share a run: every input has its batch axis first and free. Models
     * whose batch dim is fixed (usually at 1) or absent are run one record at a time.
     */
    boolean batchable() {
        for (TensorSpec input : signature.inputs()) {
            if (!input.hasBatchAxis() || input.batchAxis() != 0 || input.dims().get(0).isFixed()) {
                return false;
            }
        }
        return true;
    }

    /** Batch row {@code i}. */
    RecordInputs row(int i) {
        return rows[i];
    }

    /**
     * Encodes {@code record} into {@code row}: the user's encoder, then the attention mask when the model
     * has one the encoder left out, then completeness (and NaN) checks.
     *
     * @throws RecordConversionException naming what does not fit
     */
    void encode(IN record, RecordInputs row, boolean rejectNaN) {
        row.reset();
        try {
            spec.encoder().encode(record, row);
        } catch (RecordConversionException e) {
            throw e;
        } catch (Exception e) {
            throw new RecordConversionException("The encoder failed on a record for model " + modelName + ": " + e, e);
        }
        if (maskInput >= 0 && !row.has(maskInput)) {
            deriveMask(row);
        }
        row.checkComplete();
        if (rejectNaN) {
            String input = row.inputWithNaN();
            if (input != null) {
                throw new RecordConversionException("Input '" + input + "' holds NaN and NaN is rejected");
            }
        }
    }

    /**
     * Fills the attention mask with ones over the record's own length: each free dim of the mask takes the
     * length the record gave for the same symbol in another input. Padding then adds the zeros.
     */
    private void deriveMask(RecordInputs row) {
        TensorSpec mask = signature.inputs().get(maskInput);
        List<Dim> dims = mask.recordDims();
        long[] shape = new long[dims.size()];
        for (int d = 0; d < dims.size(); d++) {
            shape[d] = dims.get(d).isFixed() ? dims.get(d).value() : lengthOf(row, dims.get(d));
            if (shape[d] < 0) {
                throw new RecordConversionException("Cannot derive input '" + mask.name() + "' of shape "
                        + mask.shapeString() + ": no other input gives dim '" + dims.get(d)
                        + "'; put the mask in the encoder");
            }
        }
        int n = Math.toIntExact(Padding.product(shape));
        Object ones = maskOnes.computeIfAbsent(n, k -> ones(mask.elementType(), k));
        row.putDerived(maskInput, ones, shape);
    }

    private long lengthOf(RecordInputs row, Dim dim) {
        if (!dim.isSymbolic()) {
            return -1;
        }
        List<TensorSpec> inputs = signature.inputs();
        for (int i = 0; i < inputs.size(); i++) {
            if (i == maskInput || !row.has(i)) {
                continue;
            }
            List<Dim> dims = inputs.get(i).recordDims();
            for (int d = 0; d < dims.size(); d++) {
                if (dim.equals(dims.get(d)) && row.shape(i).length > d) {
                    return row.shape(i)[d];
                }
            }
        }
        return -1;
    }

    private Object ones(ElementType type, int n) {
        switch (type) {
            case INT64: {
                long[] a = new long[n];
                Arrays.fill(a, 1L);
                return a;
            }
            case INT32: {
                int[] a = new int[n];
                Arrays.fill(a, 1);
                return a;
            }
            case FLOAT: {
                float[] a = new float[n];
                Arrays.fill(a, 1f);
                return a;
            }
            case BOOL: {
                boolean[] a = new boolean[n];
                Arrays.fill(a, true);
                return a;
            }
            default:
                throw new RecordConversionException("Cannot derive an attention mask of type " + type);
        }
    }

    /**
     * Runs rows {@code offset .. offset+count)} (already encoded) in one ORT run and loads the outputs;
     * read them with {@link #decode}. Tensors and the result are closed on every path.
     */
    void run(int offset, int count) throws OrtException {
        runOn(shared.session(), packer, outputs, offset, count);
    }

    /** Runs the encoded rows on {@code session} (a shadow reference, say) into {@code into}. */
    void runOn(OrtSession session, TensorPacker with, BatchOutputs into, int offset, int count) throws OrtException {
        Map<String, OnnxTensor> tensors = with.pack(rows, offset, count);
        try (OrtSession.Result result = session.run(tensors)) {
            into.load(result, count, with.paddedLengths());
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
    }

    /** The outputs of the last {@link #run}. */
    BatchOutputs outputs() {
        return outputs;
    }

    /** The result of record {@code index} of the last {@link #run}. */
    OUT decode(IN record, int index) throws Exception {
        return spec.decoder().decode(record, outputs.at(index));
    }

    /** Scores one record. */
    OUT infer(IN record) throws Exception {
        encode(record, rows[0], false);
        run(0, 1);
        return decode(record, 0);
    }

    String modelName() {
        return modelName;
    }

    ModelSignature signature() {
        return signature;
    }

    /** The drift monitor of this instance (check {@link DriftMonitor#enabled()}); closed with the runner. */
    DriftMonitor<IN> drift() {
        return drift;
    }

    /** Where this operator's model runs (EPs and kernels), as measured when its session was loaded. */
    FallbackReport fallbackReport() {
        return fallbackReport;
    }

    SharedSession session() {
        return shared;
    }

    @Override
    public void close() {
        if (drift != null) {
            drift.close();
            drift = null;
        }
        if (shared != null) {
            SessionRegistry.INSTANCE.release(shared);
            shared = null;
        }
    }
}
