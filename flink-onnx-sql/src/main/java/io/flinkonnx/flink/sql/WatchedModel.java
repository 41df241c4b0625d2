package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.versions.ModelServing;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.table.data.RowData;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The timer of a model served from a watched folder ({@code 'watch.interval'}) by an ML_PREDICT runtime: the
 * folder is polled on a thread of its own from open, whether rows arrive or not, through the runtime's serving
 * handle ({@link ModelServing}); new versions load and pass the gate off the thread that scores, and the handle's
 * {@link ModelServing#beforeRun} swaps to a version already loaded at the next row (or batch), so an idle stream
 * serves the new version from its first row with no load to wait for. SQL functions keep no operator state:
 * after a restart the newest version of the folder serves (the DataStream operator restores the checkpointed
 * one).
 */
@Internal
final class WatchedModel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(WatchedModel.class);

    private final ModelServing<Object[], RowData> serving;
    private final Duration pollInterval;
    private final String model;
    private final int subtask;
    private final ClassLoader userCode;
    /** Polls the folder every interval from start (null until start, and after close). */
    private ScheduledExecutorService poller;
    /** Timer polls finished (guarded by itself; for tests). */
    private final long[] polls = new long[1];

    WatchedModel(
            ModelServing<Object[], RowData> serving,
            Duration pollInterval,
            String model,
            int subtask,
            ClassLoader userCode) {
        this.serving = serving;
        this.pollInterval = pollInterval;
        this.model = model;
        this.subtask = subtask;
        this.userCode = userCode;
    }

    /**
     * Starts polling the folder once the serving handle is open: at once (a restart may find newer versions than
     * the plan), then every interval.
     */
    void start() {
        LOG.info("ML_PREDICT serves model {} version {}", model, serving.servingVersion());
        poller = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "onnx-sql-model-watch-" + subtask);
            t.setDaemon(true);
            t.setContextClassLoader(userCode);
            return t;
        });
        poller.scheduleWithFixedDelay(this::poll, 0, Math.max(1, pollInterval.toMillis()), TimeUnit.MILLISECONDS);
    }

    /** One timer poll: looks at the folder and, for a new version, starts its load (both off this thread). */
    private void poll() {
        try {
            serving.poll();
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

    /** The label of the version serving now. */
    String version() {
        return serving.servingVersion();
    }

    @VisibleForTesting
    boolean awaitLoaded(Duration timeout) throws InterruptedException {
        return serving.versions().awaitLoaded(timeout);
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
        if (!awaitLoaded(timeout)) {
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
        return awaitLoaded(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
    }

    /** Stops the timer (the serving handle, its owner's, closes after). */
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
    }
}
