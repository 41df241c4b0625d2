package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import org.apache.flink.annotation.Internal;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every operator that buffers records for the engine shares (the batching and the stateful
 * operator): the buffer is scored before every checkpoint barrier, before every watermark, and at end of
 * input, so a checkpoint never holds a record that was read but not emitted; and a scored buffer leaves in
 * input order, each record as its result (with its timestamp) or a dead letter.
 *
 * @param <IN> the record type
 * @param <OUT> the result type
 */
@Internal
public abstract class BufferedScoringOperator<IN, OUT> extends AbstractStreamOperator<OUT>
        implements OneInputStreamOperator<IN, OUT>, BoundedOneInput, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(BufferedScoringOperator.class);

    private final OutputTag<FailedRecord<IN>> failedTag;
    private transient StreamRecord<OUT> reuse;

    protected BufferedScoringOperator(OutputTag<FailedRecord<IN>> failedTag) {
        this.failedTag = failedTag;
    }

    /**
     * Opens {@code runner} on this subtask's slot for batches of up to {@code policy.maxBatchSize()} and
     * returns the batch capacity: 1 for a model without a free batch axis (scored one record per run).
     */
    protected final int openRunner(InferenceRunner<IN, OUT> runner, BatchPolicy policy, MetricGroup metrics)
            throws Exception {
        runner.open(
                getRuntimeContext().getTaskInfo().getAllocationIDAsString(),
                getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(),
                metrics,
                policy.maxBatchSize(),
                policy);
        return capacityOf(runner, policy);
    }

    /** The batch capacity of an open {@code runner}: 1 for a model without a free batch axis. */
    protected static int capacityOf(InferenceRunner<?, ?> runner, BatchPolicy policy) {
        if (!runner.batchable() && policy.maxBatchSize() > 1) {
            LOG.info(
                    "Model {} has no free batch axis (inputs {}): scoring one record per run",
                    runner.modelName(),
                    runner.signature().inputs());
            return 1;
        }
        return policy.maxBatchSize();
    }

    /** Scores everything buffered and emits it ({@link #emitInOrder}). */
    protected abstract void flush() throws Exception;

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

    /**
     * Emits records {@code [0, count)} in input order: {@code results[i]} with the record's timestamp, or,
     * where {@code failures[i]} is set, the record as a dead letter.
     */
    @SuppressWarnings("unchecked")
    protected final void emitInOrder(
            int count,
            Object[] records,
            Object[] results,
            Exception[] failures,
            boolean[] hasTimestamp,
            long[] timestamps,
            Counter inferences,
            Counter failedRecords,
            InferenceRunner<IN, OUT> runner) {
        if (reuse == null) {
            reuse = new StreamRecord<>(null);
        }
        for (int i = 0; i < count; i++) {
            if (failures[i] != null) {
                deadLetter((IN) records[i], failures[i], failedRecords, runner);
                continue;
            }
            inferences.inc();
            OUT result = (OUT) results[i];
            if (hasTimestamp[i]) {
                output.collect(reuse.replace(result, timestamps[i]));
            } else {
                reuse.eraseTimestamp();
                output.collect(reuse.replace(result));
            }
        }
    }

    /**
     * {@code record} to the failed-records output with the reason the engine gives, naming the model and the
     * version {@code runner} serves.
     */
    protected final void deadLetter(IN record, Exception e, Counter failedRecords, InferenceRunner<IN, OUT> runner) {
        deadLetter(record, e, failedRecords, runner.modelName(), runner.version());
    }

    /** {@code record} to the failed-records output, naming a model that has no runner (it did not load). */
    protected final void deadLetter(IN record, Exception e, Counter failedRecords, String model, String version) {
        failedRecords.inc();
        FailedRecord<IN> failed = new FailedRecord<>(
                record, InferenceRunner.reasonOf(e), model, e.getClass().getName());
        failed.modelVersion = version;
        output.collect(failedTag, new StreamRecord<>(failed));
    }
}
