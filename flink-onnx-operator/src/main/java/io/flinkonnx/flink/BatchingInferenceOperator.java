package io.flinkonnx.flink;

import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.tensor.RecordInputs;
import java.util.Arrays;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Packs records into tensors along the model's batch axis and scores each batch in one ORT run, on the
 * task thread (see the README for why and the numbers).
 *
 * <p>Nothing buffered is lost: the buffer is scored before every checkpoint barrier
 * ({@link #prepareSnapshotPreBarrier}), before every watermark, and at end of input, so a checkpoint
 * never holds a record that was taken from the source but not yet emitted; the operator keeps no state.
 * Output order is input order within a subtask. A record that does not convert goes to the failed-records
 * side output at once; if a run fails, the batch is split in halves until the failing records are
 * isolated, and the rest is scored.
 */
final class BatchingInferenceOperator<IN, OUT> extends BufferedScoringOperator<IN, OUT> {
    private static final long serialVersionUID = 1L;
    private static final int HISTOGRAM_WINDOW = 1024;

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;

    private transient InferenceRunner<IN, OUT> runner;
    private transient DriftMonitor<IN> drift;
    private transient int capacity;
    private transient long delayMillis;
    private transient Object[] records;
    private transient long[] timestamps;
    private transient boolean[] hasTimestamp;
    private transient long[] arrivalNanos;
    private transient int size;
    private transient long bufferedBytes;
    private transient long batchDeadline;
    private transient TypeSerializer<IN> copier;
    /** Per input, the widest dims of the buffered records (padding counts toward the byte bound). */
    private transient long[][] widest;

    private transient long[] widestStringBytes;
    private transient Object[] results;
    private transient Exception[] failures;
    private transient InferenceRunner.Outcomes<OUT> outcomes;

    private transient Counter inferences;
    private transient Counter batches;
    private transient Counter failedRecords;
    private transient Counter failedBatches;
    private transient Histogram batchSizes;
    private transient Histogram batchLatencyMicros;
    private transient Histogram queueTimeMicros;

    BatchingInferenceOperator(
            OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, OutputTag<FailedRecord<IN>> failedTag) {
        super(failedTag);
        this.spec = spec;
        this.policy = policy;
    }

    @Override
    public void open() throws Exception {
        super.open();
        MetricGroup metrics = getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        runner = new InferenceRunner<>(spec);
        capacity = openRunner(runner, policy, metrics);
        delayMillis = policy.maxBatchDelay().toMillis();
        records = new Object[capacity];
        results = new Object[capacity];
        failures = new Exception[capacity];
        widest = new long[runner.signature().inputs().size()][];
        widestStringBytes = new long[widest.length];
        timestamps = new long[capacity];
        hasTimestamp = new boolean[capacity];
        arrivalNanos = new long[capacity];
        // With object reuse the source hands the same instance again once processElement returns, and the
        // buffered record would change under the decoder: keep a copy, as Flink's AsyncWaitOperator does.
        copier = getExecutionConfig().isObjectReuseEnabled()
                ? getOperatorConfig().<IN>getTypeSerializerIn(0, getUserCodeClassloader())
                : null;
        outcomes = new InferenceRunner.Outcomes<>() {
            @Override
            public void scored(int index, OUT result) {
                results[index] = result;
            }

            @Override
            public void failed(int index, Exception reason) {
                failures[index] = reason;
            }

            @Override
            public void drift(DriftReport report) {
                output.collect(DriftReport.TAG, new StreamRecord<>(report));
            }

            @Override
            public void placement(FallbackReport report) {
                output.collect(FallbackReport.TAG, new StreamRecord<>(report));
            }
        };

        inferences = metrics.counter("num_inferences");
        batches = metrics.counter("num_batches");
        failedRecords = metrics.counter("failed_records");
        failedBatches = metrics.counter("failed_batches_counter");
        batchSizes =
                metrics.histogram("inference_request_batch_size", new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
        batchLatencyMicros = metrics.histogram(
                "inference_batch_latency_micro_secs", new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
        queueTimeMicros =
                metrics.histogram("queue_time_micro_secs", new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
        output.collect(FallbackReport.TAG, new StreamRecord<>(runner.fallbackReport()));
        drift = runner.drift();
        if (drift.enabled()) {
            checkGoldenVectors(getProcessingTimeService().getCurrentProcessingTime());
        }
    }

    /** Golden vectors at start, then on a processing-time timer. */
    private void checkGoldenVectors(long now) throws Exception {
        if (drift.goldenDue(now)) {
            output.collect(DriftReport.TAG, new StreamRecord<>(drift.checkGolden(now)));
            getProcessingTimeService().registerTimer(drift.nextGoldenMillis(), this);
        }
    }

    @Override
    public void processElement(StreamRecord<IN> element) throws Exception {
        IN record = copier == null ? element.getValue() : copier.copy(element.getValue());
        RecordInputs row = runner.row(size);
        try {
            runner.encode(record, row, policy.rejectNaN());
        } catch (RecordConversionException e) {
            deadLetter(record, e, failedRecords, runner.modelName());
            return;
        }
        // The encoder's arrays may be the record's own (reused with it) or a scratch array it refills.
        row.detach();
        if (size > 0 && bufferedBytesWith(row) > policy.maxBufferedBytes()) {
            runner.swapRows(size, capacity); // park the encoded record in the spare row while the buffer runs
            flush();
            runner.swapRows(capacity, 0);
        }
        bufferedBytes = bufferedBytesWith(row);
        widen(row);
        records[size] = record;
        hasTimestamp[size] = element.hasTimestamp();
        timestamps[size] = element.getTimestamp();
        arrivalNanos[size] = System.nanoTime();
        size++;
        if (size == 1 && delayMillis > 0 && capacity > 1) {
            long now = getProcessingTimeService().getCurrentProcessingTime();
            batchDeadline = now + delayMillis;
            getProcessingTimeService().registerTimer(batchDeadline, this);
        }
        if (size >= capacity || bufferedBytes >= policy.maxBufferedBytes() || delayMillis == 0) {
            flush();
        }
    }

    /**
     * The buffer's bytes as packed if {@code row} joins it: every buffered record padded to each input's
     * widest dims (an upper bound: records that may not be padded together run in separate groups).
     */
    private long bufferedBytesWith(RecordInputs row) {
        long bytes = 0;
        for (int i = 0; i < widest.length; i++) {
            long[] shape = row.shape(i);
            long elements = 1;
            for (int d = 0; d < shape.length; d++) {
                long dim = size > 0 && d < widest[i].length ? Math.max(widest[i][d], shape[d]) : shape[d];
                elements = saturatedMultiply(elements, dim);
            }
            long perRecord = row.isStringInput(i)
                    ? Math.max(row.inputBytes(i), widestStringBytes[i])
                    : saturatedMultiply(elements, row.elementBytes(i));
            bytes = saturatedAdd(bytes, saturatedMultiply(perRecord, size + 1));
        }
        return bytes;
    }

    /** Takes {@code row}'s dims into the buffer's widest dims. */
    private void widen(RecordInputs row) {
        for (int i = 0; i < widest.length; i++) {
            long[] shape = row.shape(i);
            if (size == 0 || widest[i].length != shape.length) {
                widest[i] = shape.clone();
                widestStringBytes[i] = 0;
            } else {
                for (int d = 0; d < shape.length; d++) {
                    widest[i][d] = Math.max(widest[i][d], shape[d]);
                }
            }
            if (row.isStringInput(i)) {
                widestStringBytes[i] = Math.max(widestStringBytes[i], row.inputBytes(i));
            }
        }
    }

    private static long saturatedMultiply(long a, long b) {
        long high = Math.multiplyHigh(a, b);
        return high == 0 && a * b >= 0 ? a * b : Long.MAX_VALUE;
    }

    private static long saturatedAdd(long a, long b) {
        long sum = a + b;
        return sum < 0 ? Long.MAX_VALUE : sum;
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        // A timer of a batch already flushed by size is stale: the current batch has a later deadline.
        if (size > 0 && time >= batchDeadline) {
            flush();
        }
        if (drift.enabled()) {
            checkGoldenVectors(time);
        }
    }

    /** Scores everything buffered and emits the results in input order. */
    @SuppressWarnings("unchecked")
    @Override
    protected void flush() throws Exception {
        if (size == 0) {
            return;
        }
        long start = System.nanoTime();
        for (int i = 0; i < size; i++) {
            queueTimeMicros.update((start - arrivalNanos[i]) / 1000);
        }
        int count = size;
        // Cleared first: a systemic failure thrown below fails the task, and nothing may be emitted twice.
        size = 0;
        bufferedBytes = 0;
        try {
            if (runner.scoreBatch(records, count, outcomes)) {
                failedBatches.inc();
            }
            emitInOrder(
                    count,
                    records,
                    results,
                    failures,
                    hasTimestamp,
                    timestamps,
                    inferences,
                    failedRecords,
                    runner.modelName());
        } finally {
            Arrays.fill(records, 0, count, null);
            Arrays.fill(results, 0, count, null);
            Arrays.fill(failures, 0, count, null);
        }
        batches.inc();
        batchSizes.update(count);
        batchLatencyMicros.update((System.nanoTime() - start) / 1000);
    }

    /** The engine of this operator (open after {@link #open}). */
    InferenceRunner<IN, OUT> runner() {
        return runner;
    }

    /** Batches in which a run failed (isolation was needed), however many runs the isolation took. */
    long failedBatchesCount() {
        return failedBatches.getCount();
    }

    @Override
    public void close() throws Exception {
        try {
            if (runner != null) {
                runner.close(); // closes the drift monitor too
                runner = null;
                drift = null;
            }
        } finally {
            super.close();
        }
    }
}
