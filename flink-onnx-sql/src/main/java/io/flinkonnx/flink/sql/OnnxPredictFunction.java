package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.engine.InferenceRunner;
import java.util.Collection;
import java.util.List;
import org.apache.flink.annotation.Internal;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.PredictFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** ML_PREDICT's synchronous runtime for ONNX models: one ORT run per row, on the slot's shared session. */
@Internal
public class OnnxPredictFunction extends PredictFunction {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(OnnxPredictFunction.class);

    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final OnError onError;
    private final String version;
    /** Null unless the model is served from a watched folder. */
    private final ModelUpdates updates;

    private transient WatchedModel watched;
    private transient InferenceRunner<Object[], RowData> runner;
    /** The version that every row of this instance names: the label, or the served session's sha256. */
    private transient String scoredVersion;

    /**
     * @param version the 'model-version' label, or null: the sha256 of the session that scores; with
     *     {@code updates}, the watched folder's label of the version planned (null: the model file's own)
     * @param updates the watched folder the model's versions come from (swapped between rows), or null
     */
    public OnnxPredictFunction(
            OnnxInferenceSpec<Object[], RowData> spec,
            SqlBinding binding,
            OnError onError,
            String version,
            ModelUpdates updates) {
        this.spec = spec;
        this.binding = binding;
        this.onError = onError;
        this.version = version;
        this.updates = updates;
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        if (updates != null) {
            MetricGroup metrics = OnnxModelProvider.metricGroup(context, null);
            watched = new WatchedModel(spec, updates, 1, version, context, metrics);
            runner = watched.open();
            scoredVersion = watched.version();
            DriftMonitor.checkGoldenIfDue(runner.drift());
            return;
        }
        runner = new InferenceRunner<>(spec);
        MetricGroup metrics = OnnxModelProvider.metricGroup(context, version);
        runner.open(
                context.getTaskInfo().getAllocationIDAsString(),
                context.getTaskInfo().getIndexOfThisSubtask(),
                metrics);
        scoredVersion = OnnxModelProvider.scoredVersion(version, runner);
        // SQL has no side outputs: drift reports go to the gauges and the log.
        DriftMonitor.checkGoldenIfDue(runner.drift());
    }

    @Override
    public Collection<RowData> predict(RowData features) {
        if (watched != null) {
            runner = watched.current(runner);
            scoredVersion = watched.version();
        }
        try {
            DriftMonitor.checkGoldenIfDue(runner.drift());
        } catch (Exception e) {
            LOG.warn("Golden-vector drift check of model {} failed: {}", runner.modelName(), e.getMessage());
        }
        try {
            return List.of(binding.stampVersion(runner.infer(binding.values(features)), scoredVersion));
        } catch (Exception e) {
            // a SystemicFailureException (the session is broken) fails the job in every 'on-error' mode
            return onError.outcome(e, binding, scoredVersion);
        }
    }

    @Override
    public void close() throws Exception {
        if (watched != null) {
            watched.close();
            watched = null;
        }
        if (runner != null) {
            runner.close();
            runner = null;
        }
    }

    /** The runner scoring now (for tests). */
    InferenceRunner<Object[], RowData> runner() {
        return runner;
    }

    /** The watched folder's versions, null without 'watch.interval' (for tests). */
    WatchedModel watched() {
        return watched;
    }
}
