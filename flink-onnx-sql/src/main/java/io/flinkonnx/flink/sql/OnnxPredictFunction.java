package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.versions.ModelServing;
import java.util.Collection;
import java.util.List;
import org.apache.flink.annotation.Internal;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.PredictFunction;

/** ML_PREDICT's synchronous runtime for ONNX models: one ORT run per row, on the slot's shared session. */
@Internal
public class OnnxPredictFunction extends PredictFunction {
    private static final long serialVersionUID = 1L;

    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final OnError onError;
    private final String version;
    /** Null unless the model is served from a watched folder. */
    private final ModelUpdates updates;

    private transient ModelServing<Object[], RowData> serving;
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
        serving = OnnxModelProvider.serving(spec, 1, updates, version);
        int subtask = context.getTaskInfo().getIndexOfThisSubtask();
        runner = serving.open(
                ModelServing.withoutTimers(),
                context.getTaskInfo().getAllocationIDAsString(),
                subtask,
                context.getUserCodeClassLoader(),
                OnnxModelProvider.metricGroup(context, updates == null ? version : null));
        if (updates != null) {
            watched = new WatchedModel(
                    serving, updates.pollInterval(), spec.model().uri(), subtask, context.getUserCodeClassLoader());
            watched.start();
            scoredVersion = serving.servingVersion();
        } else {
            scoredVersion = OnnxModelProvider.scoredVersion(version, runner);
        }
    }

    @Override
    public Collection<RowData> predict(RowData features) {
        // a version loaded since takes over; golden vectors when due (SQL has no side outputs: gauges and the log)
        runner = OnnxModelProvider.beforeRun(serving);
        if (watched != null) {
            scoredVersion = serving.servingVersion();
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
        if (serving != null) {
            serving.close(); // the versions loading, then the serving runner
            serving = null;
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
