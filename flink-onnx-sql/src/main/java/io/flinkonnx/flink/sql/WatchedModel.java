package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.versions.ModelVersions;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A model served from a watched folder ({@code 'watch.interval'}) by an ML_PREDICT runtime: the folder is
 * polled on a timer of its own from open, whether rows arrive or not; new versions load and pass the gate
 * off the thread that scores, and the next row (or batch) swaps to a version already loaded. A swap itself
 * happens only between runs, on the thread that scores, so an idle stream serves the new version from its
 * first row with no load to wait for. SQL functions keep no operator state: after a restart the newest
 * version of the folder serves (the DataStream operator restores the checkpointed one).
 */
@Internal
final class WatchedModel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(WatchedModel.class);

    private final ModelVersions<Object[], RowData> versions;
    private final Duration pollInterval;
    private final String model;
    /** The folder's label of the planned version (fraud-7 for fraud-7/fraud.onnx), or null. */
    private final String plannedLabel;

    private final int subtask;
    private final ClassLoader userCode;
    /** Polls the folder every interval from open (null until open, and after close). */
    private ScheduledExecutorService poller;
    /** Timer polls finished (guarded by itself; for tests). */
    private final long[] polls = new long[1];

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
        this.subtask = context.getTaskInfo().getIndexOfThisSubtask();
        this.userCode = context.getUserCodeClassLoader();
    }

    /**
     * Opens the version the planner chose (the folder's newest when the query was planned), and starts polling
     * the folder: at once (a restart may find newer versions than the plan), then every interval.
     */
    InferenceRunner<Object[], RowData> open() throws Exception {
        InferenceRunner<Object[], RowData> runner = versions.openServing(null);
        if (plannedLabel != null) {
            // Named as the folder names it, as every poll will: the label of the same bytes never changes.
            runner.version(plannedLabel);
            versions.served(runner, plannedLabel);
        }
        LOG.info("ML_PREDICT serves model {} version {}", model, versions.serving());
        poller = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "onnx-sql-model-watch-" + subtask);
            t.setDaemon(true);
            t.setContextClassLoader(userCode);
            return t;
        });
        poller.scheduleWithFixedDelay(this::poll, 0, Math.max(1, pollInterval.toMillis()), TimeUnit.MILLISECONDS);
        return runner;
    }

    /** One timer poll: looks at the folder and, for a new version, starts its load (both off this thread). */
    private void poll() {
        try {
            versions.poll();
        } catch (RuntimeException e) {
            // a failing poll must not end the timer (a scheduled task that throws is never run again)
            LOG.warn("Polling the watched folder of model {} failed: {}", model, e.toString());
        } finally {
            synchronized (polls) {
                polls[0]++;
                polls.notifyAll();
            }
        }
    }

    /**
     * Between runs, on the thread that scores: returns the runner to score with now ({@code current}, or the
     * runner of a version loaded since, {@code current} then closed). Never waits for a load.
     */
    InferenceRunner<Object[], RowData> current(InferenceRunner<Object[], RowData> current) {
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

    /**
     * For tests: waits until the folder as it is now has been polled by the timer and what that poll found
     * has loaded (its result waits for the next row). After a wait for the loads under way, a timer poll that
     * starts later either starts a poll of its own or finds one started after that wait: the second timer
     * poll to finish from then on started after it.
     */
    @VisibleForTesting
    boolean awaitPolledAndLoaded(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        if (!versions.awaitLoaded(timeout)) {
            return false;
        }
        synchronized (polls) {
            long target = polls[0] + 2;
            while (polls[0] < target) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(polls, left);
            }
        }
        return versions.awaitLoaded(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
    }

    @Override
    public void close() {
        if (poller != null) {
            poller.shutdownNow();
            try {
                // a poll only starts a load (the loader thread runs it): it ends at once
                if (!poller.awaitTermination(10, TimeUnit.SECONDS)) {
                    LOG.warn("The folder poll of model {} did not end within 10 s of close", model);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            poller = null;
        }
        versions.close();
    }
}
