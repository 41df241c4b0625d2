package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.versions.ModelServing;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.flink.annotation.Internal;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.FunctionContext;

/**
 * ML_PREDICT's asynchronous runtime for ONNX models: rows in flight (up to the planner's async capacity,
 * {@code table.exec.async-ml-predict.max-concurrent-operations}) are gathered by one worker thread into a
 * single ORT run of up to {@code batch.max-size} rows, waiting at most {@code batch.max-delay-ms}. The
 * bounded queue gives backpressure.
 */
@Internal
public class OnnxAsyncPredictFunction extends AsyncPredictFunction {
    private static final long serialVersionUID = 1L;
    /** SQL has no side outputs: drift reports go to the gauges and the log. */
    private static final RecordBuffer.Reports NO_SIDE_OUTPUTS = new RecordBuffer.Reports() {
        @Override
        public void drift(io.flinkonnx.flink.DriftReport report) {}

        @Override
        public void placement(io.flinkonnx.flink.FallbackReport report) {}
    };

    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final int batchSize;
    private final int batchDelayMillis;
    private final OnError onError;
    private final String version;
    /** Null unless the model is served from a watched folder. */
    private final ModelUpdates updates;

    private transient ModelServing<Object[], RowData> serving;
    private transient WatchedModel watched;
    /** Changed by the worker when a new version is swapped in; read by close() to cancel a run. */
    private transient volatile InferenceRunner<Object[], RowData> runner;
    /** The version that every row of this instance names: the label, or the served session's sha256. */
    private transient String scoredVersion;

    /** The rows of the batch being scored, encoded in the serving runner's rows (the worker's alone). */
    private transient RecordBuffer<Object[], RowData> buffer;
    /** The requests of the rows in {@link #buffer}, by buffer index. */
    private transient List<Pending> buffered;
    /** Scores the rows before one that would overflow the byte bound: made once, not per row. */
    private transient RecordBuffer.Drain drainFirst;

    private transient BlockingQueue<Pending> queue;
    private transient Thread worker;
    private transient int gatherSize;
    private transient volatile boolean running;
    private transient volatile Throwable failure;

    /** A failure of the rows drained ahead of a row, carried past that row's own error handling. */
    private static final class DrainFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final RuntimeException failure;

        DrainFailure(RuntimeException failure) {
            super(failure);
            this.failure = failure;
        }
    }

    private static final class Pending {
        final Object[] values;
        final CompletableFuture<Collection<RowData>> result;
        final long queuedNanos = System.nanoTime();

        Pending(Object[] values, CompletableFuture<Collection<RowData>> result) {
            this.values = values;
            this.result = result;
        }
    }

    public OnnxAsyncPredictFunction(
            OnnxInferenceSpec<Object[], RowData> spec, SqlBinding binding, int batchSize, int batchDelayMillis) {
        this(spec, binding, batchSize, batchDelayMillis, OnError.FAIL, null, null);
    }

    /** With {@code updates}: the model is served from a watched folder, its versions swapped between batches. */
    public OnnxAsyncPredictFunction(
            OnnxInferenceSpec<Object[], RowData> spec,
            SqlBinding binding,
            int batchSize,
            int batchDelayMillis,
            OnError onError,
            String version,
            ModelUpdates updates) {
        this.spec = spec;
        this.binding = binding;
        this.batchSize = batchSize;
        this.batchDelayMillis = batchDelayMillis;
        this.onError = onError;
        this.version = version;
        this.updates = updates;
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        serving = OnnxModelProvider.serving(spec, batchSize, updates, version);
        int subtask = context.getTaskInfo().getIndexOfThisSubtask();
        MetricGroup metrics = OnnxModelProvider.metricGroup(context, updates == null ? version : null);
        runner = serving.open(
                ModelServing.withoutTimers(),
                context.getTaskInfo().getAllocationIDAsString(),
                subtask,
                context.getUserCodeClassLoader(),
                metrics);
        if (updates != null) {
            watched = new WatchedModel(
                    serving, updates.pollInterval(), spec.model().uri(), subtask, context.getUserCodeClassLoader());
            watched.start();
            scoredVersion = serving.servingVersion();
        } else {
            scoredVersion = OnnxModelProvider.scoredVersion(version, runner);
        }
        gatherSize = capacityOf(runner);
        buffered = new ArrayList<>(gatherSize);
        drainFirst = () -> {
            try {
                scoreBuffered(); // the byte bound: the rows before this one run first
            } catch (RuntimeException e) {
                throw new DrainFailure(e); // not this row's failure: the worker fails the batch
            }
            return true;
        };
        buffer = new RecordBuffer<>(runner, gatherSize, BatchPolicy.defaults(), new BatchMetrics(metrics), null, null);
        queue = new ArrayBlockingQueue<>(4 * batchSize);
        running = true;
        worker = new Thread(
                this::work, "onnx-ml-predict-" + context.getTaskInfo().getIndexOfThisSubtask());
        worker.setDaemon(true);
        worker.start();
    }

    /** Rows per run: one for a model without a free batch axis (as in the batching operator). */
    private int capacityOf(InferenceRunner<Object[], RowData> serving) {
        return serving.batchable() ? batchSize : 1;
    }

    @Override
    public CompletableFuture<Collection<RowData>> asyncPredict(RowData features) {
        CompletableFuture<Collection<RowData>> result = new CompletableFuture<>();
        if (!running) {
            result.completeExceptionally(closed());
            return result;
        }
        try {
            // Converted here: the planner may reuse the row once this call returns.
            Pending p = new Pending(binding.values(features), result);
            queue.put(p);
            // close() may have drained the queue between the check above and the put: never strand a request.
            if (!running && queue.remove(p)) {
                result.completeExceptionally(closed());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            result.completeExceptionally(e);
        } catch (RuntimeException e) {
            // the row did not convert (a NULL, a NULL element): a bad row like any other
            deliverFailure(result, e);
        }
        return result;
    }

    private void work() {
        List<Pending> batch = new ArrayList<>(gatherSize);
        try {
            while (running) {
                Pending first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                // What is queued already comes in one lock acquisition; the timed wait only for what is missing.
                queue.drainTo(batch, gatherSize - batch.size());
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(batchDelayMillis);
                while (batch.size() < gatherSize) {
                    Pending next = queue.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    if (next == null) {
                        break;
                    }
                    batch.add(next);
                    queue.drainTo(batch, gatherSize - batch.size());
                }
                score(batch);
                batch.clear();
            }
        } catch (InterruptedException e) {
            // closing
        } catch (Throwable t) {
            // A systemic failure (every run failing) or a bug: fail what this worker holds; close() fails the rest.
            batch.forEach(p -> p.result.completeExceptionally(t));
            failure = t;
            running = false;
            // and what is queued, which also frees a task thread blocked on a full queue
            List<Pending> queued = new ArrayList<>();
            queue.drainTo(queued);
            queued.forEach(p -> p.result.completeExceptionally(closed()));
        } finally {
            batch.forEach(p -> p.result.completeExceptionally(closed()));
        }
    }

    /**
     * Scores one gathered batch through the engine: a row that does not convert, or that makes the run
     * fail, fails its own future with the reason the DataStream operator gives its dead letter; the other
     * rows of the batch are scored.
     */
    private void score(List<Pending> batch) throws Exception {
        // a version loaded since takes over; golden vectors when due (SQL has no side outputs: gauges and the log)
        InferenceRunner<Object[], RowData> next = OnnxModelProvider.beforeRun(serving);
        if (next != runner) {
            runner = next;
            buffer.serve(next, capacityOf(next)); // empty: every batch is scored before the next
        }
        if (watched != null) {
            scoredVersion = serving.servingVersion();
        }
        for (Pending p : batch) {
            try {
                buffer.add(p.values, false, 0, drainFirst);
                buffered.add(p);
                if (buffer.size() == 1) {
                    buffer.arrivedAt(p.queuedNanos); // the queue time counts the wait in the queue
                }
            } catch (DrainFailure e) {
                throw e.failure;
            } catch (RuntimeException e) {
                deliverFailure(p.result, e); // the row did not encode
            }
        }
        scoreBuffered();
    }

    /**
     * Scores the rows buffered as one batch: a row that makes the run fail fails its own request with the
     * reason the DataStream operator gives its dead letter; the other rows are scored.
     */
    private void scoreBuffered() throws Exception {
        int count = buffer.take();
        if (count == 0) {
            return;
        }
        try {
            buffer.score(count, NO_SIDE_OUTPUTS);
            buffer.complete(count, new RecordBuffer.Emitter<>() {
                @Override
                public void scored(int index, RowData result, boolean hasTimestamp, long timestamp) {
                    buffered.get(index)
                            .result
                            .complete(Collections.singletonList(binding.stampVersion(result, scoredVersion)));
                }

                @Override
                public void failed(int index, Object[] row, Exception reason) {
                    deliverFailure(buffered.get(index).result, reason);
                }
            });
        } finally {
            buffered.clear();
        }
    }

    /** A bad row's outcome by {@code 'on-error'}: its request fails, or completes with a NULL row or none. */
    private void deliverFailure(CompletableFuture<Collection<RowData>> result, Exception e) {
        if (onError == OnError.FAIL) {
            result.completeExceptionally(rowFailure(e));
        } else {
            result.complete(onError.outcome(e, binding, scoredVersion));
        }
    }

    /** The failure of one row, with the reason the DataStream operator gives its dead letter. */
    private RecordConversionException rowFailure(Exception e) {
        return e instanceof RecordConversionException
                ? (RecordConversionException) e
                : new RecordConversionException(InferenceRunner.reasonOf(e), e);
    }

    private IllegalStateException closed() {
        return new IllegalStateException(
                "ML_PREDICT with model " + spec.model().uri() + " is closed"
                        + (failure == null ? "" : " after a failure: " + failure),
                failure);
    }

    /**
     * Stops the worker, cancelling a run in flight (ORT's terminate flag) rather than closing the session
     * under it, waits for it to leave, then fails every request still queued: none is left incomplete.
     */
    @Override
    public void close() throws Exception {
        running = false;
        boolean interrupted = false;
        try {
            if (worker != null) {
                if (runner != null) {
                    runner.terminate();
                }
                interrupted = stopAndJoin(worker);
                worker = null;
            }
        } finally {
            if (queue != null) {
                List<Pending> left = new ArrayList<>();
                queue.drainTo(left);
                left.forEach(p -> p.result.completeExceptionally(closed()));
            }
            if (watched != null) {
                watched.close();
                watched = null;
            }
            if (serving != null) {
                serving.close(); // the versions loading, then the serving runner
                serving = null;
                runner = null;
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** The watched folder's versions, null without 'watch.interval' (for tests). */
    WatchedModel watched() {
        return watched;
    }

    /**
     * Interrupts {@code worker} and waits until it has ended. Flink interrupts the task thread while it cancels:
     * keep waiting, for the sessions must not close under a run, and must be released.
     *
     * @return whether this thread was interrupted while it waited
     */
    static boolean stopAndJoin(Thread worker) {
        worker.interrupt();
        boolean interrupted = false;
        while (worker.isAlive()) {
            try {
                worker.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        return interrupted;
    }
}
