package io.flinkonnx.flink.engine;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession.RunOptions;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelBound;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.flink.SessionSharing;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.flink.tensor.AttentionMasks;
import io.flinkonnx.flink.tensor.BatchOutputs;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.model.VersionLabel;
import java.util.List;
import java.util.function.Supplier;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.metrics.MetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine behind every entry point: acquires the slot's shared session, converts records to tensors
 * (one reused {@link RecordInputs} per batch row) and outputs to results, and releases the session. Not
 * thread-safe: one per operator instance.
 *
 * <p>It is the one entry point; the jobs it hands off each have a class of their own: which records share a run
 * ({@link RunGrouping}), whether the session still answers ({@link SessionHealth}), the attention mask a record
 * left out ({@link AttentionMasks}), the gauges ({@link RunnerMetrics}), and a model's default version label
 * ({@link VersionLabel}). Once {@link #close() closed}, every scoring call throws {@link IllegalStateException},
 * as ORT's {@code OrtSession} does.
 */
@Internal
public final class InferenceRunner<IN, OUT> implements AutoCloseable {
    public static final String METRIC_GROUP = "onnx";
    /** The metric group variable naming the version a {@code model_info} gauge stands for (see {@link #registerVersion}). */
    public static final String VERSION_VARIABLE = "version";

    private static final Logger LOG = LoggerFactory.getLogger(InferenceRunner.class);

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final String modelName;
    private final SuppliedInputs suppliedInputs;
    /** Per input: whether the operator supplies it (null when the records give every input). */
    private boolean[] supplied;

    private SharedSession shared;
    private ModelSignature signature;
    private TensorPacker packer;
    private RecordInputs[] rows;
    private BatchOutputs outputs;
    /** Derives the attention mask a record's encoder left out; null when the model has none. */
    private AttentionMasks masks;

    private RunGrouping grouping;
    private SessionHealth health;

    private volatile FallbackReport fallbackReport;
    private int subtask;
    private String version;
    /** The report at open was UNKNOWN because the warm-up could not run: the first real batch measures it. */
    private boolean placementFromRunDue;

    private DriftMonitor<IN> drift;

    /** The spec's encoder and decoder, or what they bound to this model ({@link ModelBound}). */
    private RecordEncoder<IN> encoder;

    private ResultDecoder<IN, OUT> decoder;

    private RunOptions runOptions;
    private long runsStarted;
    /** Set by {@link #close()}: scoring after it throws, as ORT's {@code OrtSession} does. */
    private boolean closed;

    private final Isolation isolation = new Isolation();
    private final Object[] single = new Object[1];
    private final SingleOutcome<OUT> singleOutcome = new SingleOutcome<>();

    public InferenceRunner(OnnxInferenceSpec<IN, OUT> spec) {
        this(spec, null);
    }

    /**
     * A runner some of whose inputs the operator supplies rather than the record (recurrent states,
     * constants): see {@link SuppliedInputs}.
     */
    public InferenceRunner(OnnxInferenceSpec<IN, OUT> spec, SuppliedInputs suppliedInputs) {
        this.spec = spec;
        this.modelName = spec.model().uri();
        this.suppliedInputs = suppliedInputs;
    }

    /** The inputs the operator supplies to this runner (adapted to its model at open), or null. */
    public SuppliedInputs suppliedInputs() {
        return suppliedInputs;
    }

    /** {@link #open(String, int, MetricGroup, int, BatchPolicy)} for one record per run. */
    public void open(String slot, int subtask, MetricGroup metrics) throws Exception {
        open(slot, subtask, metrics, 1, BatchPolicy.defaults());
    }

    /**
     * Fetches and checks the model, then joins (or opens) the session of {@code slot}, ready for runs of
     * up to {@code maxRows} records. Fails at job start on a bad model or signature, naming the model and
     * the cause.
     */
    public void open(String slot, int subtask, MetricGroup metrics, int maxRows, BatchPolicy policy) throws Exception {
        checkOpen("open");
        // PER_TASK_MANAGER: every slot of this process names the same registry entry, so they share the session.
        String sharedBy = spec.sessionSharing() == SessionSharing.PER_TASK_MANAGER ? "taskmanager" : slot;
        shared = SessionLoader.acquire(spec.model(), sharedBy, spec.providers(), spec.sessionSettings());
        try {
            signature = spec.batchAxis() == null
                    ? shared.signature()
                    : shared.signature().withBatchAxis(spec.batchAxis());
            if (spec.signatureCheck() != null) {
                spec.signatureCheck().check(signature, modelName);
            }
            if (suppliedInputs != null) {
                signature = suppliedInputs.adapt(signature, modelName);
                supplied = new boolean[signature.inputs().size()];
                for (int i = 0; i < supplied.length; i++) {
                    supplied[i] =
                            suppliedInputs.supplies(signature.inputs().get(i).name());
                }
            }
            encoder = bound(spec.encoder(), RecordEncoder.class);
            decoder = bound(spec.decoder(), ResultDecoder.class);
            List<TensorSpec> inputs = signature.inputs();
            int maskInput = -1;
            for (TensorSpec output : signature.outputs()) {
                if (output.kind() == TensorSpec.Kind.OPTIONAL) {
                    throw new IllegalArgumentException(
                            "Model " + modelName + " has output " + output + ": ONNX Runtime's"
                                    + " Java API cannot return OPTIONAL values (the run crashes the JVM in ORT 1.24)");
                }
            }
            for (TensorSpec input : inputs) {
                if (input.kind() != TensorSpec.Kind.TENSOR
                        || !input.elementType().isSupportedForRecords()) {
                    throw new IllegalArgumentException("Model " + modelName + " has input " + input
                            + ", which records cannot feed yet (supported: tensors of FLOAT, DOUBLE, INT64, INT32,"
                            + " INT16, INT8, UINT8, BOOL, STRING)");
                }
                if (input.name().equals(policy.attentionMaskInput())) {
                    maskInput = inputs.indexOf(input);
                }
            }
            packer = new TensorPacker(OrtRuntime.env(), inputs, policy.padValue(), maskInput);
            masks = maskInput < 0 ? null : new AttentionMasks(inputs, maskInput, spec.maxRecordBytes());
            grouping = new RunGrouping(inputs, maskInput, policy, maxRows);
            // One spare row: a record is encoded before the operator knows whether the batch must go first.
            rows = RecordInputs.batchRows(modelName, inputs, maxRows + 1);
            runOptions = new RunOptions();
            health = new SessionHealth(
                    modelName, spec.maxConsecutiveFailedBatches(), shared, packer, runOptions, inputs.size());
            outputs = new BatchOutputs(modelName, signature.outputs(), maxRows);
            version = VersionLabel.ofUri(modelName);
            outputs.version(version, shared.modelSha256());
            this.subtask = subtask;
            placementFromRunDue = shared.placementPending();
            reportPlacement("");
            if (spec.failOnCpuFallback()
                    && (fallbackReport.fellBackToCpu()
                            || (!fallbackReport.preferred.equals("cpu")
                                    && fallbackReport.verdict == FallbackReport.Verdict.UNKNOWN))) {
                throw new IllegalStateException("Model " + modelName + " asked for " + fallbackReport.requested
                        + " with failOnCpuFallback, but "
                        + (fallbackReport.nodes.isEmpty()
                                ? "placement could not be checked (" + fallbackReport.note + ")"
                                : fallbackReport.nodesOnCpu + " of " + fallbackReport.nodes.size()
                                        + " nodes would run on" + " cpu: " + fallbackReport.cpuNodes())
                        + (fallbackReport.skipped.isEmpty() ? "" : "; skipped: " + fallbackReport.skipped));
            }
            if (metrics != null) {
                RunnerMetrics.register(metrics, () -> this);
                RunnerMetrics.registerVersion(metrics, version, () -> this.version);
            }
            drift = new DriftMonitor<>(
                    spec.drift(),
                    modelName,
                    signature,
                    shared.session(),
                    subtask,
                    spec.sessionSettings().onnxRuntimeExtensions());
            if (drift.enabled()) {
                drift.open(slot, metrics, policy.padValue(), maskInput);
            }
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    /**
     * {@code part} itself, or what it binds to this runner's model when it is {@link ModelBound} (checked to be
     * a {@code kind}).
     */
    @SuppressWarnings("unchecked")
    private <T> T bound(T part, Class<?> kind) throws Exception {
        if (!(part instanceof ModelBound)) {
            return part;
        }
        Object bound = ((ModelBound<?>) part).bind(signature, modelName);
        if (!kind.isInstance(bound)) {
            closeBound(bound);
            throw new IllegalStateException(part.getClass().getName() + " bound model " + modelName + " to "
                    + (bound == null ? "null" : bound.getClass().getName()) + ", which is not a "
                    + kind.getSimpleName());
        }
        return (T) bound;
    }

    /** Closes a bound encoder or decoder that holds resources (a tokenizer); never the spec's own. */
    private void closeBound(Object bound) {
        if (bound instanceof AutoCloseable && bound != spec.encoder() && bound != spec.decoder()) {
            try {
                ((AutoCloseable) bound).close();
            } catch (Exception e) {
                LOG.warn("Closing {} of model {} failed: {}", bound.getClass().getName(), modelName, e.toString());
            }
        }
    }

    /**
     * {@code model_info} in the group {@code version=<label>}: 1 while {@code label} serves ({@code serving} gives
     * the label serving at report time), 0 once another version took over. Reporters cannot carry a string
     * gauge's value (Prometheus reports 0 for {@code model_version}), so the version travels as a metric variable,
     * a Prometheus label: the "info metric" idiom. Register once per label.
     */
    public static void registerVersion(MetricGroup metrics, String label, Supplier<String> serving) {
        RunnerMetrics.registerVersion(metrics, label, serving);
    }

    /**
     * The runner's gauges on {@code metrics}, each read from the runner {@code serving} gives at report
     * time: an operator whose model is swapped registers them once, over whichever version serves.
     */
    public static void registerMetrics(MetricGroup metrics, Supplier<InferenceRunner<?, ?>> serving) {
        RunnerMetrics.register(metrics, serving);
    }

    /**
     * Names the version this runner serves in every output it decodes ({@link OutputRow#modelVersion()}) and in
     * its dead letters. By default the model file's name (or its numbered folder's).
     */
    public void version(String label) {
        checkOpen("version");
        this.version = label;
        outputs.version(label, shared.modelSha256());
    }

    /** The version label this runner serves (see {@link #version(String)}). */
    public String version() {
        return version;
    }

    /** The spec this runner was opened with (its model is the version it serves). */
    public OnnxInferenceSpec<IN, OUT> spec() {
        return spec;
    }

    /** Whether the operator supplies input {@code input} (a recurrent state, a constant) rather than the record. */
    public boolean supplies(int input) {
        return supplied != null && supplied[input];
    }

    /**
     * Whether several records can share a run: every input has its batch axis first and free. Models
     * whose batch dim is fixed (usually at 1) or absent are run one record at a time.
     */
    public boolean batchable() {
        for (int i = 0; i < signature.inputs().size(); i++) {
            TensorSpec input = signature.inputs().get(i);
            if (supplied != null && supplied[i]) {
                // A state stacks along its own batch axis; a constant (no batch axis) is shared by the run.
                if (input.hasBatchAxis() && input.dims().get(input.batchAxis()).isFixed()) {
                    return false;
                }
                continue;
            }
            if (!input.hasBatchAxis()
                    || input.batchAxis() != 0
                    || input.dims().get(0).isFixed()) {
                return false;
            }
        }
        return true;
    }

    /** Batch row {@code i} (the record buffer's: rows are encoded and moved through it alone). */
    RecordInputs row(int i) {
        checkOpen("row");
        return rows[i];
    }

    /** Swaps batch rows {@code i} and {@code j} (an encoded record moves to the front of a new batch). */
    void swapRows(int i, int j) {
        checkOpen("swapRows");
        RecordInputs t = rows[i];
        rows[i] = rows[j];
        rows[j] = t;
    }

    /**
     * Encodes {@code record} into {@code row}: the user's encoder, then the attention mask when the model
     * has one the encoder left out, then completeness (and NaN) checks.
     *
     * @throws RecordConversionException naming what does not fit
     */
    public void encode(IN record, RecordInputs row, boolean rejectNaN) {
        checkOpen("encode");
        row.reset();
        try {
            encoder.encode(record, row);
        } catch (RecordConversionException e) {
            throw e;
        } catch (Exception e) {
            throw new RecordConversionException("The encoder failed on a record for model " + modelName + ": " + e, e);
        }
        if (masks != null) {
            masks.deriveIfMissing(row);
        }
        row.checkComplete(supplied);
        long bytes = row.byteEstimate();
        if (bytes > spec.maxRecordBytes()) {
            throw new RecordConversionException("The record carries " + bytes + " bytes of input for model " + modelName
                    + ", more than maxRecordBytes (" + spec.maxRecordBytes() + ")");
        }
        if (rejectNaN) {
            String input = row.inputWithNaN();
            if (input != null) {
                throw new RecordConversionException("Input '" + input + "' holds NaN and NaN is rejected");
            }
        }
    }

    /**
     * Runs rows {@code offset .. offset+count)} (already encoded) in one ORT run and loads the outputs;
     * read them with {@link #decode}. Tensors and the result are closed on every path.
     */
    void run(int offset, int count) throws OrtException {
        checkOpen("run");
        runsStarted++;
        packer.run(shared.session(), runOptions, rows, offset, count, outputs);
    }

    /**
     * Where {@link #scoreBatch} hands each record's outcome, by the record's index in the batch. Every
     * record gets exactly one call: {@link #scored} or {@link #failed}.
     */
    public interface Outcomes<OUT> {
        void scored(int index, OUT result) throws Exception;

        /**
         * {@link #scored(int, Object)} with the record's outputs (valid during this call only), for
         * operators that keep some of them (recurrent states). The engine calls this one.
         */
        default void scored(int index, OUT result, OutputRow outputs) throws Exception {
            scored(index, result);
        }

        void failed(int index, Exception reason) throws Exception;

        /** A drift report due after a run (shadow model, record references). */
        default void drift(DriftReport report) throws Exception {}

        /**
         * The fallback report measured on the first real batch, for a model whose synthetic warm-up could not
         * run (the report at open said UNKNOWN).
         */
        default void placement(FallbackReport report) throws Exception {}
    }

    /**
     * Scores batch rows {@code [0, count)}, already encoded, for {@code records[0 .. count)}. Records that
     * may not share a run (they differ along an axis that cannot be padded) are run in separate groups of
     * equal shape; a run that fails (packing included) is halved until the failing records are alone,
     * spending at most {@code count + 2 ceil(log2 count) + 1} runs on the batch (see {@link Isolation}),
     * after which the records not yet isolated fail with the last error. Outcomes are handed over group by
     * group.
     *
     * @throws SystemicFailureException when every run has failed in {@code maxConsecutiveFailedBatches}
     *     batches in a row: the session, not the data, is broken
     * @return whether a run of this batch failed
     */
    public boolean scoreBatch(Object[] records, int count, Outcomes<OUT> outcomes) throws Exception {
        checkOpen("scoreBatch");
        // In run order: the decoder and the drift checks must see the record whose row they read.
        Object[] view = grouping.group(rows, records, count);
        Isolation isolation = this.isolation.reset(count);
        try {
            int from = 0;
            while (from < count) {
                int to = grouping.runEnd(rows, from, count);
                isolate(view, from, to, isolation, outcomes);
                from = to;
            }
        } finally {
            grouping.release(count);
        }
        health.batchScored(isolation.succeededRuns, isolation.failedRuns, isolation.lastError);
        return isolation.failedRuns > 0;
    }

    /** Builds this instance's fallback report from the session's placement, and logs it. */
    private void reportPlacement(String when) {
        fallbackReport = FallbackReport.of(
                modelName,
                shared.modelSha256(),
                subtask,
                shared.resolution(),
                shared.placement(),
                shared.placementNote());
        if (fallbackReport.fellBackToCpu()) {
            LOG.warn("Execution provider fallback{}: {}", when, fallbackReport.summary());
        } else {
            LOG.info("Execution providers{}: {}", when, fallbackReport.summary());
        }
    }

    /** After the first successful real run of a model whose warm-up could not run: its fallback report. */
    private void reportPlacementFromRun(Outcomes<OUT> outcomes) throws Exception {
        shared.completePlacementFromRun(); // once per session, whichever of its users runs first
        placementFromRunDue = false;
        reportPlacement(" (measured on the first batch)");
        outcomes.placement(fallbackReport);
    }

    /** Runs spent and failed while scoring one batch. */
    private static final class Isolation {
        int runsLeft;
        int succeededRuns;
        int failedRuns;
        int failedRecords;
        Exception lastError;

        /**
         * A run per record plus one descent of the halving: enough to isolate a few bad records (one bad
         * record in n costs 2 log2(n) + 1 runs), about half the 2n - 1 runs of a batch where all fail.
         */
        Isolation reset(int count) {
            runsLeft = count + 2 * (32 - Integer.numberOfLeadingZeros(Math.max(1, count - 1))) + 1;
            succeededRuns = 0;
            failedRuns = 0;
            failedRecords = 0;
            lastError = null;
            return this;
        }
    }

    private void isolate(Object[] records, int from, int to, Isolation isolation, Outcomes<OUT> outcomes)
            throws Exception {
        if (isolation.runsLeft <= 0) {
            isolation.failedRecords += to - from;
            for (int i = from; i < to; i++) {
                outcomes.failed(
                        grouping.batchIndex(i),
                        new RecordConversionException(
                                "Not scored: isolating the failing records"
                                        + " of this batch used up its runs (a run per record plus one halving); last error: "
                                        + isolation.lastError.getMessage(),
                                isolation.lastError));
            }
            return;
        }
        isolation.runsLeft--;
        try {
            run(from, to - from);
        } catch (OrtException | RuntimeException error) {
            isolation.failedRuns++;
            isolation.lastError = error;
            if (to - from == 1) {
                isolation.failedRecords++;
                outcomes.failed(grouping.batchIndex(from), error);
                return;
            }
            int mid = (from + to) >>> 1;
            isolate(records, from, mid, isolation, outcomes);
            isolate(records, mid, to, isolation, outcomes);
            return;
        }
        isolation.succeededRuns++;
        health.ran(rows, from, to);
        if (placementFromRunDue) {
            reportPlacementFromRun(outcomes);
        }
        if (drift.enabled()) {
            try {
                for (DriftReport report : drift.afterRun(records, rows, from, to - from, outputs)) {
                    outcomes.drift(report);
                }
            } catch (Exception e) {
                // A reference that cannot be compared must not stop scoring; it is a configuration error to fix.
                LOG.warn("Drift check of model {} failed: {}", modelName, e.getMessage());
            }
        }
        for (int i = from; i < to; i++) {
            @SuppressWarnings("unchecked")
            IN record = (IN) records[i];
            OUT result;
            try {
                result = decode(record, i - from);
            } catch (Exception e) {
                outcomes.failed(grouping.batchIndex(i), e);
                continue;
            }
            outcomes.scored(grouping.batchIndex(i), result, outputs.at(i - from));
        }
    }

    /** Runs started on the served session since open (for tests of isolation cost). */
    @VisibleForTesting
    public long runsStarted() {
        return runsStarted;
    }

    /** Lengths whose derived-mask arrays are cached (0 for a model without an attention mask). */
    @VisibleForTesting
    public int maskCacheSize() {
        return masks == null ? 0 : masks.cacheSize();
    }

    /** A dead letter's reason: the exception's message, ORT's marked as such. */
    public static String reasonOf(Exception e) {
        String message = e.getMessage() == null || e.getMessage().isBlank() ? e.toString() : e.getMessage();
        return e instanceof OrtException ? "ONNX Runtime failed on this record: " + message : message;
    }

    /**
     * Cancels a run in flight from another thread (ORT's {@code RunOptions.setTerminate}); runs after this
     * fail at once. For closing while a worker thread may still be inside {@code run}.
     */
    public void terminate() {
        try {
            if (runOptions != null) {
                runOptions.setTerminate(true);
            }
        } catch (OrtException | RuntimeException e) { // closed meanwhile (a version swapped out): nothing runs
            LOG.warn("Could not cancel the run of model {}: {}", modelName, e.getMessage());
        }
    }

    /** The outputs of the last {@link #run}. */
    public BatchOutputs outputs() {
        checkOpen("outputs");
        return outputs;
    }

    /** The result of record {@code index} of the last {@link #run}. */
    public OUT decode(IN record, int index) throws Exception {
        checkOpen("decode");
        return decoder.decode(record, outputs.at(index));
    }

    /**
     * Scores one record as a batch of one, through {@link #scoreBatch} like every other entry point; a
     * record that fails is rethrown (the map function and the SQL functions have no side output: the
     * task fails with the message a dead letter would carry).
     */
    public OUT infer(IN record) throws Exception {
        checkOpen("infer");
        encode(record, rows[0], false);
        single[0] = record;
        try {
            scoreBatch(single, 1, singleOutcome);
        } finally {
            single[0] = null;
        }
        return singleOutcome.take();
    }

    /** The outcome of a batch of one. */
    private static final class SingleOutcome<OUT> implements Outcomes<OUT> {
        private OUT result;
        private Exception failure;

        @Override
        public void scored(int index, OUT result) {
            this.result = result;
        }

        @Override
        public void failed(int index, Exception reason) {
            this.failure = reason;
        }

        OUT take() throws Exception {
            Exception f = failure;
            OUT r = result;
            failure = null;
            result = null;
            if (f != null) {
                throw f;
            }
            return r;
        }
    }

    public String modelName() {
        return modelName;
    }

    public ModelSignature signature() {
        return signature;
    }

    /** The drift monitor of this instance (check {@link DriftMonitor#enabled()}); closed with the runner. */
    public DriftMonitor<IN> drift() {
        return drift;
    }

    /** Where this operator's model runs (EPs and kernels), as measured when its session was loaded. */
    public FallbackReport fallbackReport() {
        return fallbackReport;
    }

    public SharedSession session() {
        return shared;
    }

    /**
     * Fails a call on a closed runner, naming the call and the model, as ORT's {@code OrtSession} fails a run
     * after its close: its session may already serve another runner, or be freed.
     */
    private void checkOpen(String method) {
        if (closed) {
            throw new IllegalStateException("Trying to score a closed InferenceRunner of model " + modelName + ": "
                    + method + " after close()");
        }
    }

    /**
     * Releases the session (the last user of a slot's session frees it), the run options and the drift monitor.
     * Idempotent; every scoring call after it throws {@link IllegalStateException}, while the accessors the
     * metric reporters read ({@link #session()}, {@link #fallbackReport()}) stay safe (null or the last report).
     */
    @Override
    public void close() {
        closed = true;
        health = null; // its known-good record copy is garbage now
        if (runOptions != null) {
            runOptions.close();
            runOptions = null;
        }
        if (outputs != null) {
            outputs.close(); // the pinned output tensors; the accessors keep the last batch's heap values
        }
        if (drift != null) {
            drift.close();
            drift = null;
        }
        if (encoder != null) {
            closeBound(encoder);
            encoder = null;
        }
        if (decoder != null) {
            closeBound(decoder);
            decoder = null;
        }
        if (shared != null) {
            SessionRegistry.INSTANCE.release(shared);
            shared = null;
        }
    }
}
