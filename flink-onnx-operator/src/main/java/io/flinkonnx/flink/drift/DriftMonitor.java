package io.flinkonnx.flink.drift;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.flink.tensor.BatchOutputs;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.annotation.Internal;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Measures drift for one operator instance: shadow runs of a reference model on sampled batches, ONNX
 * golden vectors at start and on an interval, references carried by sampled records. Reports go to the
 * caller (a side output) and to gauges and the log here.
 */
@Internal
public final class DriftMonitor<IN> implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DriftMonitor.class);

    private final DriftConfig<IN> config;
    private final String modelName;
    private final ModelSignature signature;
    private final OrtSession served;
    private final int subtask;
    /** The reference model's session settings: defaults, with the served model's custom operators. */
    private final SessionSettings referenceSettings;

    private SharedSession reference;
    private TensorPacker referencePacker;
    private BatchOutputs referenceOutputs;
    private List<ReferenceDataSet> golden = List.of();
    private long nextGoldenMillis = Long.MAX_VALUE;
    private long shadowEvery;
    private long recordEvery;
    private long batches;
    private volatile DriftReport latest;

    /**
     * @param served the session whose outputs are checked (golden vectors run on it); the monitor never
     *     scores records itself, it is handed each batch's rows and outputs by the engine
     */
    public DriftMonitor(
            DriftConfig<IN> config,
            String modelName,
            ModelSignature signature,
            OrtSession served,
            int subtask,
            boolean onnxRuntimeExtensions) {
        this.config = config;
        this.referenceSettings = SessionSettings.builder()
                .onnxRuntimeExtensions(onnxRuntimeExtensions)
                .build();
        this.modelName = modelName;
        this.signature = signature;
        this.served = served;
        this.subtask = subtask;
    }

    public boolean enabled() {
        return config.enabled();
    }

    /** Opens the reference session and reads the golden vectors; fails at start when either is unusable. */
    public void open(String slot, MetricGroup metrics, double padValue, int maskInput) throws Exception {
        if (config.referenceModel != null) {
            reference = SessionLoader.acquire(config.referenceModel, slot, ProviderChain.cpu(), referenceSettings);
            ModelSignature sig = reference.signature();
            List<TensorSpec> inputs = signature.inputs();
            for (TensorSpec input : inputs) {
                if (sig.input(input.name()).isEmpty()) {
                    throw new IllegalArgumentException("Reference model " + config.referenceModel.uri()
                            + " has no input '" + input.name() + "' (its inputs: " + sig.inputs() + ")");
                }
            }
            referencePacker = new TensorPacker(OrtRuntime.env(), inputs, padValue, maskInput);
            referenceOutputs = new BatchOutputs(config.referenceModel.uri(), sig.outputs());
            shadowEvery = Math.max(1, Math.round(1 / config.shadowFraction));
        }
        if (config.recordReferences != null) {
            recordEvery = Math.max(1, Math.round(1 / config.recordFraction));
        }
        if (config.goldenVectors != null) {
            // Complete sets only: a missing output_K.pb fails here, at start, instead of comparing nothing later.
            golden = GoldenVectors.readAll(Path.of(config.goldenVectors), modelName, signature);
            nextGoldenMillis = 0;
        }
        if (metrics != null && enabled()) {
            registerMetrics(metrics, () -> this);
        }
    }

    /**
     * The drift gauges on {@code metrics}, read from the monitor {@code serving} gives at report time: an
     * operator whose model is swapped registers them once, over whichever version serves.
     */
    public static void registerMetrics(MetricGroup metrics, java.util.function.Supplier<DriftMonitor<?>> serving) {
        metrics.gauge("drift_max_abs_error", (Gauge<Double>)
                () -> latestOf(serving) == null ? 0 : latestOf(serving).maxAbsError());
        metrics.gauge("drift_max_rel_error", (Gauge<Double>)
                () -> latestOf(serving) == null ? 0 : latestOf(serving).maxRelError());
        metrics.gauge("drift_fraction_outside", (Gauge<Double>)
                () -> latestOf(serving) == null ? 0 : latestOf(serving).fractionOutside());
        metrics.gauge("drift_flagged", (Gauge<Integer>) () -> {
            DriftReport latest = latestOf(serving);
            return latest != null && latest.flagged ? 1 : 0;
        });
    }

    private static DriftReport latestOf(java.util.function.Supplier<DriftMonitor<?>> serving) {
        DriftMonitor<?> monitor = serving.get();
        return monitor == null ? null : monitor.latest;
    }

    /**
     * Runs the golden vectors when they are due by the wall clock (entry points without Flink timers);
     * the reports go to the gauges and the log.
     */
    public static void checkGoldenIfDue(DriftMonitor<?> monitor) throws OrtException {
        long now = System.currentTimeMillis();
        if (monitor.goldenDue(now)) {
            monitor.checkGolden(now);
        }
    }

    /** Whether the golden vectors are due at {@code nowMillis}. */
    public boolean goldenDue(long nowMillis) {
        return !golden.isEmpty() && nowMillis >= nextGoldenMillis;
    }

    /** When the golden vectors are next due (Long.MAX_VALUE without golden vectors). */
    public long nextGoldenMillis() {
        return nextGoldenMillis;
    }

    /** Runs every golden-vector set on the served session and compares its outputs. */
    public DriftReport checkGolden(long nowMillis) throws OrtException {
        nextGoldenMillis = nowMillis + config.goldenInterval.toMillis();
        Map<String, DriftAccumulator> acc = new LinkedHashMap<>();
        GoldenVectors vectors = new GoldenVectors(modelName, served, signature);
        for (ReferenceDataSet set : golden) {
            vectors.compare(set, acc, config.tolerance, DriftMonitor::classes);
        }
        if (acc.isEmpty()) {
            throw new IllegalStateException("Golden vectors " + config.goldenVectors + " compared no output of "
                    + modelName + ": a check that compares nothing is not a pass");
        }
        return publish(report(DriftReport.Source.GOLDEN_VECTORS, config.goldenVectors, golden.size(), acc, nowMillis));
    }

    /**
     * After a successful run of {@code rows[offset, offset+count)} (for {@code records[offset ..]}) whose
     * outputs are {@code outputs}: the reports due for this batch (shadow, record references), possibly
     * none. The shadow model is run here, on this monitor's own packed copy of the rows.
     */
    @SuppressWarnings("unchecked")
    public List<DriftReport> afterRun(
            Object[] records, RecordInputs[] rows, int offset, int count, BatchOutputs outputs) throws Exception {
        batches++;
        List<DriftReport> reports = new ArrayList<>(2);
        long now = System.currentTimeMillis();
        if (reference != null && batches % shadowEvery == 0) {
            referencePacker.run(reference.session(), null, rows, offset, count, referenceOutputs);
            Map<String, DriftAccumulator> acc = new LinkedHashMap<>();
            for (TensorSpec spec : signature.outputs()) {
                Object actual = outputs.batchValues(spec.name());
                if (actual != null && reference.signature().output(spec.name()).isPresent()) {
                    accumulator(acc, spec, spec.elementType()).add(actual, referenceOutputs.batchValues(spec.name()));
                }
            }
            reports.add(publish(report(DriftReport.Source.SHADOW_MODEL, config.referenceModel.uri(), count, acc, now)));
        }
        if (config.recordReferences != null && batches % recordEvery == 0) {
            Map<String, DriftAccumulator> acc = new LinkedHashMap<>();
            long compared = 0;
            for (int i = 0; i < count; i++) {
                Map<String, Object> refs = config.recordReferences.references((IN) records[offset + i]);
                if (refs == null || refs.isEmpty()) {
                    continue;
                }
                compared++;
                OutputRow row = outputs.at(i);
                for (Map.Entry<String, Object> e : refs.entrySet()) {
                    TensorSpec spec = signature
                            .output(e.getKey())
                            .orElseThrow(() -> new IllegalArgumentException(
                                    "Record reference names output '" + e.getKey() + "', which " + modelName
                                            + " does not have (outputs: " + signature.outputs() + ")"));
                    accumulator(acc, spec, spec.elementType()).add(row.value(spec.name()), e.getValue());
                }
            }
            if (compared > 0) {
                reports.add(publish(report(DriftReport.Source.RECORD_REFERENCE, "records", compared, acc, now)));
            }
        }
        return reports;
    }

    private DriftAccumulator accumulator(Map<String, DriftAccumulator> acc, TensorSpec spec, ElementType type) {
        return acc.computeIfAbsent(spec.name(), n -> new DriftAccumulator(n, type, config.tolerance, classes(spec)));
    }

    /** Classes per row when the output looks like a classifier's ([batch, classes] with classes fixed >= 2). */
    public static int classes(TensorSpec spec) {
        if (spec.rank() == 2
                && spec.dims().get(1).isFixed()
                && spec.dims().get(1).value() >= 2) {
            return (int) spec.dims().get(1).value();
        }
        return 0;
    }

    private DriftReport report(
            DriftReport.Source source,
            String referenceName,
            long records,
            Map<String, DriftAccumulator> acc,
            long nowMillis) {
        DriftReport r = new DriftReport();
        r.model = modelName;
        r.subtask = subtask;
        r.source = source;
        r.reference = referenceName;
        r.records = records;
        r.timestampMillis = nowMillis;
        acc.values().forEach(a -> r.outputs.add(a.result()));
        r.flagged = r.outputs.stream().anyMatch(o -> !o.withinTolerance);
        return r;
    }

    private DriftReport publish(DriftReport r) {
        latest = r;
        if (r.flagged) {
            LOG.warn("Output drift out of tolerance: {}", r);
        } else {
            LOG.debug("Output drift within tolerance: {}", r);
        }
        return r;
    }

    public DriftReport latest() {
        return latest;
    }

    @Override
    public void close() {
        if (reference != null) {
            SessionRegistry.INSTANCE.release(reference);
            reference = null;
        }
    }
}
