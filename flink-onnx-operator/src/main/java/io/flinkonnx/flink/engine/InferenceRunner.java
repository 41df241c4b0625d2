package io.flinkonnx.flink.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtSession.RunOptions;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SessionSharing;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.placement.PlacementProbe;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.flink.tensor.BatchOutputs;
import io.flinkonnx.flink.tensor.ElementCodec;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.model.VersionLabel;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.apache.flink.annotation.Internal;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine behind every entry point: acquires the slot's shared session, converts records to tensors
 * (one reused {@link RecordInputs} per batch row) and outputs to results, and releases the session. Not
 * thread-safe: one per operator instance.
 */
@Internal
public final class InferenceRunner<IN, OUT> implements AutoCloseable {
    public static final String METRIC_GROUP = "onnx";
    /** The metric group variable naming the version a {@code model_info} gauge stands for (see {@link #registerVersion}). */
    public static final String VERSION_VARIABLE = "version";

    private static final int MASK_CACHE_ENTRIES = 16;
    private static final int MASK_CACHE_MAX_LENGTH = 1 << 16;
    /**
     * The largest record kept as the probe of a session that may be broken (a heap copy held for the runner's
     * life); larger records are not kept, a later smaller one may be.
     */
    static final long KNOWN_GOOD_MAX_BYTES = 1 << 20;

    /** The longest free length the synthetic probe tries (doubling from 1). */
    static final long MAX_PROBE_LENGTH = 1024;

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
    private int maskInput = -1;
    private boolean bucketByLength;
    /** Every input's record dims are fixed: all records of a batch have the same shapes. */
    private boolean fixedRecordShapes;

    private volatile FallbackReport fallbackReport;
    private int subtask;
    private String version;
    /** The report at open was UNKNOWN because the warm-up could not run: the first real batch measures it. */
    private boolean placementFromRunDue;

    private DriftMonitor<IN> drift;
    /** Per input, per record dim: whether records that differ there may share a run (padded). */
    private boolean[][] paddable;
    /** Ones arrays of the derived attention mask by length: a few recent lengths, small arrays only. */
    private final Map<Integer, Object> maskOnes = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, Object> eldest) {
            return size() > MASK_CACHE_ENTRIES;
        }
    };

    private RunOptions runOptions;
    private int[] order;
    private Object[] ordered;
    private int consecutiveFailedBatches;
    /**
     * A copy of a record that ran on this session alone at its own shape (no padding), or null until one has:
     * an input known to run, the probe of {@link #checkSessionAnswers}.
     */
    private RecordInputs knownGood;

    private final RecordInputs[] probeRow = new RecordInputs[1];
    private long runsStarted;
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
            List<TensorSpec> inputs = signature.inputs();
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
            paddable = paddableDims(inputs, maskInput, policy.padWithoutMask());
            bucketByLength = policy.bucketByLength();
            fixedRecordShapes =
                    inputs.stream().allMatch(in -> in.recordDims().stream().allMatch(Dim::isFixed));
            // One spare row: a record is encoded before the operator knows whether the batch must go first.
            rows = RecordInputs.batchRows(modelName, inputs, maxRows + 1);
            order = new int[maxRows];
            ordered = new Object[maxRows];
            runOptions = new RunOptions();
            outputs = new BatchOutputs(modelName, signature.outputs());
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
            registerMetrics(metrics);
            drift = new DriftMonitor<>(spec.drift(), modelName, signature, shared.session(), subtask);
            if (drift.enabled()) {
                drift.open(slot, metrics, policy.padValue(), maskInput);
            }
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    private void registerMetrics(MetricGroup metrics) {
        if (metrics != null) {
            registerMetrics(metrics, () -> this);
            registerVersion(metrics, version, () -> this.version);
        }
    }

    /**
     * {@code model_info} in the group {@code version=<label>}: 1 while {@code label} serves ({@code serving} gives
     * the label serving at report time), 0 once another version took over. Reporters cannot carry a string
     * gauge's value (Prometheus reports 0 for {@code model_version}), so the version travels as a metric variable,
     * a Prometheus label: the "info metric" idiom. Register once per label.
     */
    public static void registerVersion(MetricGroup metrics, String label, Supplier<String> serving) {
        metrics.addGroup(VERSION_VARIABLE, label)
                .gauge("model_info", (Gauge<Integer>) () -> label.equals(serving.get()) ? 1 : 0);
    }

    /**
     * The runner's gauges on {@code metrics}, each read from the runner {@code serving} gives at report
     * time: an operator whose model is swapped registers them once, over whichever version serves.
     */
    public static void registerMetrics(MetricGroup metrics, Supplier<InferenceRunner<?, ?>> serving) {
        // Null-safe: a reporter may read the gauges after the operator closed its runner.
        metrics.gauge("load_model_latency_milli_secs", (Gauge<Long>) () -> {
            SharedSession s = sessionOf(serving);
            return s == null ? 0L : s.loadTimeMillis();
        });
        metrics.gauge("model_byte_size", (Gauge<Long>) () -> {
            SharedSession s = sessionOf(serving);
            return s == null ? 0L : s.modelSizeBytes();
        });
        metrics.gauge("open_sessions", (Gauge<Integer>) SessionRegistry.INSTANCE::openSessions);
        io.flinkonnx.flink.session.TaskManagerSessions.register(metrics); // flinkonnx.open_sessions, across jobs
        // read at every report: the first real batch may measure what the warm-up could not
        metrics.gauge("nodes_on_cpu", (Gauge<Integer>) () -> {
            FallbackReport r = reportOf(serving);
            return r == null ? 0 : r.nodesOnCpu;
        });
        metrics.gauge("cpu_time_fraction", (Gauge<Double>) () -> {
            FallbackReport r = reportOf(serving);
            return r == null ? 0.0 : r.cpuTimeFraction;
        });
    }

    private static SharedSession sessionOf(Supplier<InferenceRunner<?, ?>> serving) {
        InferenceRunner<?, ?> runner = serving.get();
        return runner == null ? null : runner.shared;
    }

    private static FallbackReport reportOf(Supplier<InferenceRunner<?, ?>> serving) {
        InferenceRunner<?, ?> runner = serving.get();
        return runner == null ? null : runner.fallbackReport;
    }

    /**
     * Names the version this runner serves in every output it decodes ({@link OutputRow#modelVersion()}) and in
     * its dead letters. By default the model file's name (or its numbered folder's).
     */
    public void version(String label) {
        this.version = label;
        outputs.version(label, shared.modelSha256());
    }

    /**
     * The version label of a model URI when nothing else names it: {@link VersionLabel#ofUri}.
     *
     * @deprecated the rule lives in {@link VersionLabel#ofUri}; this delegate stays only so that code written
     *     against it on branches open at the move still compiles, and goes once they merged.
     */
    @Deprecated
    public static String versionLabelOf(String modelUri) {
        return VersionLabel.ofUri(modelUri);
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

    /**
     * Which record dims may differ within one run, padded to the longest: dims named by a symbol the
     * attention-mask input also carries (the model is told where the padding is), or every free dim when
     * the policy opts in. Anywhere else padding would change the prediction (an LSTM, mean pooling), so
     * records that differ there are run in separate groups of equal shape.
     */
    private static boolean[][] paddableDims(List<TensorSpec> inputs, int maskInput, boolean padWithoutMask) {
        Set<String> masked = new HashSet<>();
        if (maskInput >= 0) {
            for (Dim d : inputs.get(maskInput).recordDims()) {
                if (d.isSymbolic()) {
                    masked.add(d.symbol());
                }
            }
        }
        boolean[][] paddable = new boolean[inputs.size()][];
        for (int i = 0; i < inputs.size(); i++) {
            List<Dim> dims = inputs.get(i).recordDims();
            paddable[i] = new boolean[dims.size()];
            for (int d = 0; d < dims.size(); d++) {
                Dim dim = dims.get(d);
                paddable[i][d] =
                        !dim.isFixed() && (padWithoutMask || (dim.isSymbolic() && masked.contains(dim.symbol())));
            }
        }
        return paddable;
    }

    /** Whether two encoded records may share one run: equal shapes except along paddable dims. */
    private boolean shareRun(RecordInputs a, RecordInputs b) {
        for (int i = 0; i < paddable.length; i++) {
            long[] sa = a.shape(i);
            long[] sb = b.shape(i);
            if (sa.length != sb.length) {
                return false;
            }
            for (int d = 0; d < sa.length; d++) {
                if (sa[d] != sb[d]
                        && (d >= paddable[i].length
                                || !paddable[i][d]
                                || (bucketByLength && lengthBucket(sa[d]) != lengthBucket(sb[d])))) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * The length range of a padded length, in steps of about 1.41x (half powers of two): 1..8 share one, then
     * 9..11, 12..16, 17..22, 23..32, 33..45, ... A record is padded by less than 41 % of its length.
     */
    private static int lengthBucket(long length) {
        if (length <= 8) {
            return 0;
        }
        int octave = 63 - Long.numberOfLeadingZeros(length - 1); // 2^octave < length <= 2^(octave+1)
        long half = Math.round(Math.sqrt(2) * (1L << octave)); // the half-power boundary in that octave
        return 2 * octave + (length > half ? 1 : 0);
    }

    /** Batch row {@code i} (the record buffer's: rows are encoded and moved through it alone). */
    RecordInputs row(int i) {
        return rows[i];
    }

    /** Swaps batch rows {@code i} and {@code j} (an encoded record moves to the front of a new batch). */
    void swapRows(int i, int j) {
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
        long values = 1;
        for (long d : shape) {
            values = d == 0 || values <= spec.maxRecordBytes() / d ? values * d : spec.maxRecordBytes() + 1;
        }
        long bytes = values * Math.max(1, mask.elementType().byteSize());
        if (values > spec.maxRecordBytes() || row.byteEstimate() + bytes > spec.maxRecordBytes()) {
            throw new RecordConversionException("The attention mask '" + mask.name() + "' derived for this record ("
                    + Arrays.toString(shape) + ") would take the record past maxRecordBytes (" + spec.maxRecordBytes()
                    + ")");
        }
        int n = (int) values;
        Object ones = n > MASK_CACHE_MAX_LENGTH
                ? ones(mask.elementType(), n)
                : maskOnes.computeIfAbsent(n, k -> ones(mask.elementType(), k));
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

    /** The mask's ones: the mask input's element type (INT64, INT32, FLOAT, BOOL, ...) filled with 1. */
    private static Object ones(ElementType type, int n) {
        ElementCodec codec = ElementCodec.of(type);
        Object ones = codec.newArray(n);
        codec.fillOnes(ones);
        return ones;
    }

    /**
     * Runs rows {@code offset .. offset+count)} (already encoded) in one ORT run and loads the outputs;
     * read them with {@link #decode}. Tensors and the result are closed on every path.
     */
    void run(int offset, int count) throws OrtException {
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
        for (int i = 0; i < count; i++) {
            order[i] = i;
        }
        // Records of a model whose inputs all have fixed record dims always share a run (encode checked the dims).
        boolean grouped = !fixedRecordShapes && groupByRun(count);
        // In run order: the decoder and the drift checks must see the record whose row they read.
        Object[] view = records;
        if (grouped) {
            for (int p = 0; p < count; p++) {
                ordered[p] = records[order[p]];
            }
            view = ordered;
        }
        Isolation isolation = this.isolation.reset(count);
        int from = 0;
        while (from < count) {
            int to = from + 1;
            while (to < count && (!grouped || shareRun(rows[from], rows[to]))) {
                to++;
            }
            isolate(view, from, to, isolation, outcomes);
            from = to;
        }
        if (grouped) {
            Arrays.fill(ordered, 0, count, null);
        }
        if (isolation.succeededRuns > 0 || isolation.failedRuns == 0) {
            consecutiveFailedBatches = 0;
        } else {
            consecutiveFailedBatches++;
            if (consecutiveFailedBatches >= spec.maxConsecutiveFailedBatches()) {
                checkSessionAnswers(isolation.lastError);
            }
        }
        return isolation.failedRuns > 0;
    }

    /**
     * After {@code maxConsecutiveFailedBatches} batches in which every run failed: bad records, or a broken
     * session? An input known to run answers: a record that scored on this session earlier; else synthetic
     * inputs of ones at free lengths 1, 2, 4, ... 1024 (a convolution or reflect pad cannot run at the
     * warm-up's length of 1, and failing the job for that would fail it again on every restart as the source
     * replays the same records). If one runs, the records are bad and go on as dead letters; if every probe
     * fails, the session is broken (from its load, if nothing ever scored on it) and the job fails so that a
     * restart reloads it.
     */
    private void checkSessionAnswers(Exception lastError) {
        String probe = null;
        Probe answer = Probe.NOT_RUN;
        if (knownGood != null) {
            probe = "a record that scored earlier on this session";
            answer = runProbe(knownGood);
        }
        if (answer == Probe.NOT_RUN) {
            probe = "synthetic inputs of ones at every free length from 1 to " + MAX_PROBE_LENGTH;
            answer = runSyntheticLengths();
        }
        if (answer == Probe.FAILED) {
            throw new SystemicFailureException(
                    "Every run of model " + modelName + " failed in "
                            + consecutiveFailedBatches + " batches in a row (maxConsecutiveFailedBatches = "
                            + spec.maxConsecutiveFailedBatches() + ") and so did " + probe
                            + ": the session, not the records, is broken. Last error: " + lastError,
                    lastError);
        }
        if (answer == Probe.RAN) {
            LOG.warn(
                    "Every run of model {} failed in {} batches in a row, but {} runs: the records are bad, not the"
                            + " session; they go on as dead letters. Last error: {}",
                    modelName,
                    consecutiveFailedBatches,
                    probe,
                    lastError.getMessage());
        } else {
            LOG.warn(
                    "Every run of model {} failed in {} batches in a row, and {}: bad records cannot be told from a"
                            + " broken session, so they go on as dead letters. Last error: {}",
                    modelName,
                    consecutiveFailedBatches,
                    probe + " could not be built",
                    lastError.getMessage());
        }
        consecutiveFailedBatches = 0;
    }

    /** What a probe of the session says. */
    private enum Probe {
        /** It ran: the session answers. */
        RAN,
        /** It failed: the session is broken. */
        FAILED,
        /** It could not be built or packed (out of memory): that says nothing of the session. */
        NOT_RUN
    }

    /** Runs {@code row} alone on the session. */
    private Probe runProbe(RecordInputs row) {
        probeRow[0] = row;
        Map<String, OnnxTensor> tensors;
        try {
            tensors = packer.pack(probeRow, 0, 1);
        } catch (OrtException | RuntimeException e) {
            LOG.warn("The probe of model {} could not be packed: {}", modelName, e.toString());
            return Probe.NOT_RUN;
        } finally {
            probeRow[0] = null;
        }
        return runTensors(tensors);
    }

    /**
     * Synthetic inputs (ones) at free lengths 1, 2, 4, ... {@link #MAX_PROBE_LENGTH}: the first that runs shows
     * the session answers (a convolution or reflect pad needs a length of 2 or more, so length 1 alone would
     * call a healthy session broken); if every one that could be built fails, the session is broken (a
     * session broken from its load fails them all).
     */
    private Probe runSyntheticLengths() {
        Probe answer = Probe.NOT_RUN;
        for (long length = 1; length <= MAX_PROBE_LENGTH; length *= 2) {
            Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
            try {
                for (TensorSpec input : shared.signature().inputs()) {
                    tensors.put(input.name(), PlacementProbe.ones(OrtRuntime.env(), input, length));
                }
            } catch (OrtException | RuntimeException | OutOfMemoryError e) {
                tensors.values().forEach(OnnxTensor::close);
                LOG.warn("The synthetic probe of model {} at length {} could not be built: {}", modelName, length, e);
                return answer;
            }
            answer = runTensors(tensors);
            if (answer == Probe.RAN || !hasFreeDims()) {
                return answer;
            }
        }
        return answer;
    }

    /** Whether some input has a free dim besides its batch axis (else every length is the same input). */
    private boolean hasFreeDims() {
        for (TensorSpec input : shared.signature().inputs()) {
            for (int d = 0; d < input.dims().size(); d++) {
                if (d != input.batchAxis() && !input.dims().get(d).isFixed()) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Runs {@code tensors} on the session, then closes them and the result. */
    private Probe runTensors(Map<String, OnnxTensor> tensors) {
        try (OrtSession.Result ignored = shared.session().run(tensors, runOptions)) {
            return Probe.RAN;
        } catch (OrtException | RuntimeException e) {
            LOG.warn("The probe of model {} failed: {}", modelName, e.getMessage());
            return Probe.FAILED;
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * After a successful run of rows {@code [from, to)}: keeps a copy of its first record as the probe of
     * {@link #checkSessionAnswers}, unless one is kept already, the record is larger than
     * {@link #KNOWN_GOOD_MAX_BYTES}, or the run was padded (the record ran at the batch's shape, not its own).
     */
    private void rememberKnownGood(int from, int to) {
        RecordInputs first = rows[from];
        if (first.byteEstimate() > KNOWN_GOOD_MAX_BYTES) {
            return;
        }
        for (int r = from + 1; r < to; r++) {
            for (int i = 0; i < paddable.length; i++) {
                if (!Arrays.equals(first.shape(i), rows[r].shape(i))) {
                    return;
                }
            }
        }
        knownGood = first.copy();
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

    /**
     * Puts rows that may share a run next to each other (stable: groups in order of their first record,
     * records in input order within a group), tracking each row's original index in {@link #order}.
     * Returns false, touching nothing, when all rows may share one run (the common case).
     */
    private boolean groupByRun(int count) {
        int first = 1;
        while (first < count && shareRun(rows[0], rows[first])) {
            first++;
        }
        if (first >= count) {
            return false;
        }
        // Insertion by group: each row moves back to just after the last row of its group seen so far.
        for (int r = first; r < count; r++) {
            int end = groupEnd(r);
            RecordInputs row = rows[r];
            int index = order[r];
            for (int k = r; k > end; k--) {
                rows[k] = rows[k - 1];
                order[k] = order[k - 1];
            }
            rows[end] = row;
            order[end] = index;
        }
        return true;
    }

    /** Where row {@code r} goes among the already placed rows {@code [0, r)}: after its group, or at the end. */
    private int groupEnd(int r) {
        int end = -1;
        for (int k = 0; k < r; k++) {
            if (shareRun(rows[k], rows[r])) {
                end = k + 1;
            }
        }
        return end < 0 ? r : end;
    }

    private void isolate(Object[] records, int from, int to, Isolation isolation, Outcomes<OUT> outcomes)
            throws Exception {
        if (isolation.runsLeft <= 0) {
            isolation.failedRecords += to - from;
            for (int i = from; i < to; i++) {
                outcomes.failed(
                        order[i],
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
                outcomes.failed(order[from], error);
                return;
            }
            int mid = (from + to) >>> 1;
            isolate(records, from, mid, isolation, outcomes);
            isolate(records, mid, to, isolation, outcomes);
            return;
        }
        isolation.succeededRuns++;
        if (knownGood == null) {
            rememberKnownGood(from, to);
        }
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
                outcomes.failed(order[i], e);
                continue;
            }
            outcomes.scored(order[i], result, outputs.at(i - from));
        }
    }

    /** Runs started on the served session since open (for tests of isolation cost). */
    public long runsStarted() {
        return runsStarted;
    }

    /** Lengths whose derived-mask arrays are cached. */
    public int maskCacheSize() {
        return maskOnes.size();
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
        return outputs;
    }

    /** The result of record {@code index} of the last {@link #run}. */
    public OUT decode(IN record, int index) throws Exception {
        return spec.decoder().decode(record, outputs.at(index));
    }

    /**
     * Scores one record as a batch of one, through {@link #scoreBatch} like every other entry point; a
     * record that fails is rethrown (the map function and the SQL functions have no side output: the
     * task fails with the message a dead letter would carry).
     */
    public OUT infer(IN record) throws Exception {
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

    @Override
    public void close() {
        if (runOptions != null) {
            runOptions.close();
            runOptions = null;
        }
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
