package io.flinkonnx.flink;

import ai.onnxruntime.OrtException;
import java.util.Arrays;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
final class BatchingInferenceOperator<IN, OUT> extends AbstractStreamOperator<OUT>
        implements OneInputStreamOperator<IN, OUT>, BoundedOneInput, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(BatchingInferenceOperator.class);
    private static final int HISTOGRAM_WINDOW = 1024;

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;
    private final OutputTag<FailedRecord<IN>> failedTag;

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
    private transient StreamRecord<OUT> reuse;

    private transient Counter inferences;
    private transient Counter batches;
    private transient Counter failedRecords;
    private transient Counter failedBatches;
    private transient Histogram batchSizes;
    private transient Histogram batchLatencyMicros;
    private transient Histogram queueTimeMicros;

    BatchingInferenceOperator(OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, OutputTag<FailedRecord<IN>> failedTag) {
        this.spec = spec;
        this.policy = policy;
        this.failedTag = failedTag;
    }

    @Override
    public void open() throws Exception {
        super.open();
        MetricGroup metrics = getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        runner = new InferenceRunner<>(spec);
        runner.open(getRuntimeContext().getTaskInfo().getAllocationIDAsString(),
                getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(), metrics, policy.maxBatchSize(), policy);
        capacity = policy.maxBatchSize();
        if (!runner.batchable() && capacity > 1) {
            LOG.info("Model {} has no free batch axis (inputs {}): scoring one record per run", runner.modelName(),
                    runner.signature().inputs());
            capacity = 1;
        }
        delayMillis = policy.maxBatchDelay().toMillis();
        records = new Object[capacity];
        timestamps = new long[capacity];
        hasTimestamp = new boolean[capacity];
        arrivalNanos = new long[capacity];
        reuse = new StreamRecord<>(null);

        inferences = metrics.counter("num_inferences");
        batches = metrics.counter("num_batches");
        failedRecords = metrics.counter("failed_records");
        failedBatches = metrics.counter("failed_batches_counter");
        batchSizes = metrics.histogram("inference_request_batch_size", new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
        batchLatencyMicros = metrics.histogram("inference_batch_latency_micro_secs",
                new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
        queueTimeMicros = metrics.histogram("queue_time_micro_secs", new DescriptiveStatisticsHistogram(HISTOGRAM_WINDOW));
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
        IN record = element.getValue();
        RecordInputs row = runner.row(size);
        try {
            runner.encode(record, row, policy.rejectNaN());
        } catch (RecordConversionException e) {
            deadLetter(record, e);
            return;
        }
        records[size] = record;
        hasTimestamp[size] = element.hasTimestamp();
        timestamps[size] = element.getTimestamp();
        arrivalNanos[size] = System.nanoTime();
        bufferedBytes += row.byteEstimate();
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

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        // Buffered records precede the watermark: emitting them after it would make them late.
        flush();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() throws Exception {
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    /** Scores everything buffered, in order. */
    void flush() throws Exception {
        if (size == 0) {
            return;
        }
        long start = System.nanoTime();
        for (int i = 0; i < size; i++) {
            queueTimeMicros.update((start - arrivalNanos[i]) / 1000);
        }
        score(0, size);
        batches.inc();
        batchSizes.update(size);
        batchLatencyMicros.update((System.nanoTime() - start) / 1000);
        Arrays.fill(records, 0, size, null);
        size = 0;
        bufferedBytes = 0;
    }

    /** Scores rows [from, to); when the run fails, halves the range until the failing records are alone. */
    @SuppressWarnings("unchecked")
    private void score(int from, int to) throws Exception {
        try {
            runner.run(from, to - from);
        } catch (OrtException | RecordConversionException e) {
            failedBatches.inc();
            if (to - from == 1) {
                deadLetter((IN) records[from], e);
                return;
            }
            int mid = (from + to) >>> 1;
            score(from, mid);
            score(mid, to);
            return;
        }
        if (drift.enabled()) {
            try {
                for (DriftReport report : drift.afterRun(records, from, to - from)) {
                    output.collect(DriftReport.TAG, new StreamRecord<>(report));
                }
            } catch (Exception e) {
                // A reference that cannot be compared must not stop scoring; it is a configuration error to fix.
                LOG.warn("Drift check of model {} failed: {}", runner.modelName(), e.getMessage());
            }
        }
        for (int i = from; i < to; i++) {
            IN record = (IN) records[i];
            OUT result;
            try {
                result = runner.decode(record, i - from);
            } catch (Exception e) {
                deadLetter(record, e);
                continue;
            }
            inferences.inc();
            if (hasTimestamp[i]) {
                output.collect(reuse.replace(result, timestamps[i]));
            } else {
                reuse.eraseTimestamp();
                output.collect(reuse.replace(result));
            }
        }
    }

    private void deadLetter(IN record, Exception e) {
        failedRecords.inc();
        String reason = e instanceof OrtException ? "ONNX Runtime failed on this record: " + e.getMessage() : e.getMessage();
        output.collect(failedTag, new StreamRecord<>(new FailedRecord<>(record, reason, runner.modelName(),
                e.getClass().getName())));
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
