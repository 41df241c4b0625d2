package io.flinkonnx.flink;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.FunctionContext;

/**
 * ML_PREDICT's asynchronous runtime for ONNX models: rows in flight (up to the planner's async capacity,
 * {@code table.exec.async-ml-predict.max-concurrent-operations}) are gathered by one worker thread into a
 * single ORT run of up to {@code batch.max-size} rows, waiting at most {@code batch.max-delay-ms}. The
 * bounded queue gives backpressure.
 */
public class OnnxAsyncPredictFunction extends AsyncPredictFunction {
    private static final long serialVersionUID = 1L;

    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final int batchSize;
    private final int batchDelayMillis;

    private transient InferenceRunner<Object[], RowData> runner;
    private transient BlockingQueue<Pending> queue;
    private transient Thread worker;
    private transient volatile boolean running;

    private static final class Pending {
        final Object[] values;
        final CompletableFuture<Collection<RowData>> result;

        Pending(Object[] values, CompletableFuture<Collection<RowData>> result) {
            this.values = values;
            this.result = result;
        }
    }

    OnnxAsyncPredictFunction(OnnxInferenceSpec<Object[], RowData> spec, SqlBinding binding, int batchSize,
            int batchDelayMillis) {
        this.spec = spec;
        this.binding = binding;
        this.batchSize = batchSize;
        this.batchDelayMillis = batchDelayMillis;
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        runner = new InferenceRunner<>(spec);
        int rows = batchSize;
        org.apache.flink.metrics.MetricGroup metrics = context.getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        runner.open(context.getTaskInfo().getAllocationIDAsString(), context.getTaskInfo().getIndexOfThisSubtask(),
                metrics, rows, BatchPolicy.defaults());
        // SQL has no side outputs: drift reports go to the gauges and the log.
        DriftMonitor.checkGoldenIfDue(runner.drift());
        queue = new ArrayBlockingQueue<>(4 * batchSize);
        running = true;
        worker = new Thread(this::work, "onnx-ml-predict-" + context.getTaskInfo().getIndexOfThisSubtask());
        worker.setDaemon(true);
        worker.start();
    }

    @Override
    public CompletableFuture<Collection<RowData>> asyncPredict(RowData features) {
        CompletableFuture<Collection<RowData>> result = new CompletableFuture<>();
        try {
            // Converted here: the planner may reuse the row once this call returns.
            Pending p = new Pending(binding.values(features), result);
            queue.put(p);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            result.completeExceptionally(e);
        } catch (RuntimeException e) {
            result.completeExceptionally(e);
        }
        return result;
    }

    private void work() {
        List<Pending> batch = new ArrayList<>(batchSize);
        while (running) {
            try {
                Pending first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(batchDelayMillis);
                while (batch.size() < batchSize) {
                    Pending next = queue.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    if (next == null) {
                        break;
                    }
                    batch.add(next);
                }
                score(batch);
            } catch (InterruptedException e) {
                return;
            } finally {
                batch.clear();
            }
        }
    }

    private void score(List<Pending> batch) {
        try {
            DriftMonitor.checkGoldenIfDue(runner.drift());
        } catch (Exception e) {
            batch.forEach(p -> p.result.completeExceptionally(e));
            return;
        }
        List<Pending> encoded = new ArrayList<>(batch.size());
        for (Pending p : batch) {
            try {
                runner.encode(p.values, runner.row(encoded.size()), false);
                encoded.add(p);
            } catch (RuntimeException e) {
                p.result.completeExceptionally(e);
            }
        }
        if (encoded.isEmpty()) {
            return;
        }
        try {
            runner.run(0, encoded.size());
            for (int i = 0; i < encoded.size(); i++) {
                Pending p = encoded.get(i);
                p.result.complete(List.of(runner.decode(p.values, i)));
            }
        } catch (Exception e) {
            encoded.forEach(p -> p.result.completeExceptionally(e));
        }
    }

    @Override
    public void close() throws Exception {
        running = false;
        if (worker != null) {
            worker.interrupt();
            worker.join(TimeUnit.SECONDS.toMillis(10));
        }
        if (runner != null) {
            runner.close();
            runner = null;
        }
    }
}
