package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.versions.ModelVersions;
import java.time.Duration;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A model served from a watched folder ({@code 'watch.interval'}) by an ML_PREDICT runtime: the folder is
 * polled on the thread that scores, new versions load and pass the gate off it, and the runner changes
 * between runs. SQL functions keep no operator state: after a restart the newest version of the folder
 * serves (the DataStream operator restores the checkpointed one).
 */
@Internal
final class WatchedModel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(WatchedModel.class);

    private final ModelVersions<Object[], RowData> versions;
    private final Duration pollInterval;
    private final String model;
    /** The folder's label of the planned version (fraud-7 for fraud-7/fraud.onnx), or null. */
    private final String plannedLabel;

    private long nextPollMillis;

    WatchedModel(
            OnnxInferenceSpec<Object[], RowData> spec,
            ModelUpdates settings,
            int maxRows,
            String plannedLabel,
            FunctionContext context,
            MetricGroup metrics) {
        this.versions = new ModelVersions<>(
                spec,
                settings,
                BatchPolicy.builder().maxBatchSize(maxRows).build(),
                context.getTaskInfo().getAllocationIDAsString(),
                context.getTaskInfo().getIndexOfThisSubtask(),
                context.getUserCodeClassLoader(),
                metrics);
        this.pollInterval = settings.pollInterval();
        this.model = spec.model().uri();
        this.plannedLabel = plannedLabel;
    }

    /** Opens the version the planner chose (the folder's newest when the query was planned). */
    InferenceRunner<Object[], RowData> open() throws Exception {
        InferenceRunner<Object[], RowData> runner = versions.openServing(null);
        if (plannedLabel != null) {
            // Named as the folder names it, as every poll will: the label of the same bytes never changes.
            runner.version(plannedLabel);
            versions.served(runner, plannedLabel);
        }
        LOG.info("ML_PREDICT serves model {} version {}", model, versions.serving());
        return runner;
    }

    /**
     * Between runs, on the thread that scores: polls the folder when due, and returns the runner to score
     * with now ({@code current}, or a new version's, {@code current} then closed).
     */
    InferenceRunner<Object[], RowData> current(InferenceRunner<Object[], RowData> current) {
        long now = System.currentTimeMillis();
        if (now >= nextPollMillis) {
            versions.poll();
            nextPollMillis = now + pollInterval.toMillis();
        }
        InferenceRunner<Object[], RowData> next = current;
        for (ModelVersions.Step<Object[], RowData> step : versions.takeReady()) {
            try {
                next = versions.apply(step, next, () -> {}); // nothing is buffered between rows or batches
            } catch (Exception e) {
                throw new IllegalStateException(
                        "Model " + model + " could not swap in version " + step.report.version, e);
            }
        }
        return next;
    }

    /** The label of the version serving now. */
    String version() {
        return versions.serving().version;
    }

    @VisibleForTesting
    boolean awaitLoaded(Duration timeout) throws InterruptedException {
        return versions.awaitLoaded(timeout);
    }

    @Override
    public void close() {
        versions.close();
    }
}
