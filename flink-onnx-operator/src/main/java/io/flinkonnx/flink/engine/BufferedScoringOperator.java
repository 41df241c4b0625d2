package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.RecordConversionException;
import org.apache.flink.annotation.Internal;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.api.common.typeutils.TypeSerializer;
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
    private transient MetricGroup metrics;
    private transient Counter failedRecords;
    private transient TypeSerializer<IN> copier;

    /** Drift and fallback reports of runs, to their side outputs (set at open: transient). */
    protected transient RecordBuffer.Reports reports;

    private transient RecordBuffer.Timers timers;

    private RecordBuffer.Reports newReports() {
        return new RecordBuffer.Reports() {
            @Override
            public void drift(DriftReport report) {
                output.collect(DriftReport.TAG, new StreamRecord<>(report));
            }

            @Override
            public void placement(FallbackReport report) {
                output.collect(FallbackReport.TAG, new StreamRecord<>(report));
            }
        };
    }

    /** This operator's processing-time clock and timers, for its record buffers' delay trigger. */
    private RecordBuffer.Timers newTimers() {
        return new RecordBuffer.Timers() {
            @Override
            public long now() {
                return getProcessingTimeService().getCurrentProcessingTime();
            }

            @Override
            public void register(long time) {
                getProcessingTimeService().registerTimer(time, BufferedScoringOperator.this);
            }
        };
    }

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

    /** Scores everything buffered and emits it (see {@link #drain(RecordBuffer)}). */
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

    @Override
    public void open() throws Exception {
        super.open();
        metrics = getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        failedRecords = metrics.counter("failed_records");
        reuse = new StreamRecord<>(null);
        reports = newReports();
        timers = newTimers();
        // With object reuse the source hands the same instance again once processElement returns.
        copier = getExecutionConfig().isObjectReuseEnabled()
                ? getOperatorConfig().<IN>getTypeSerializerIn(0, getUserCodeClassloader())
                : null;
    }

    /**
     * {@code record} to keep past {@code processElement}: a copy when the source reuses objects, as Flink's
     * {@code AsyncWaitOperator} keeps one (a buffer's {@link RecordBuffer#own} does the same).
     */
    protected final IN own(IN record) {
        return copier == null ? record : copier.copy(record);
    }

    /** The library's metric group of this operator ({@code onnx}). */
    protected final MetricGroup onnxMetrics() {
        return metrics;
    }

    /** A record buffer in front of {@code runner}, on this operator's timers and object-reuse setting. */
    protected final RecordBuffer<IN, OUT> newBuffer(
            InferenceRunner<IN, OUT> runner, int capacity, BatchPolicy policy, BatchMetrics batchMetrics) {
        return new RecordBuffer<>(runner, capacity, policy, batchMetrics, timers, copier);
    }

    /**
     * The buffer in front of {@code runner}, which serves from now on: a new one at first ({@code current} null),
     * else {@code current} switched over (it is empty: a swap follows a flush).
     */
    protected final RecordBuffer<IN, OUT> bufferFor(
            RecordBuffer<IN, OUT> current, InferenceRunner<IN, OUT> runner, BatchPolicy policy, BatchMetrics batches) {
        int capacity = capacityOf(runner, policy);
        if (current == null) {
            return newBuffer(runner, capacity, policy, batches);
        }
        current.serve(runner, capacity);
        return current;
    }

    /** This operator's processing-time clock and timers (set at open). */
    protected final RecordBuffer.Timers timers() {
        return timers;
    }

    /** {@code value} to the side output {@code tag}. */
    protected final <T> void sideOutput(OutputTag<T> tag, T value) {
        output.collect(tag, new StreamRecord<>(value));
    }

    /**
     * Adds {@code element} (already {@link RecordBuffer#own owned}) to {@code buffer}, draining the buffer first
     * when the record would cross the byte bound and after it when a trigger fires. A record that does not
     * encode goes to the dead letters.
     */
    protected final void buffer(RecordBuffer<IN, OUT> buffer, IN record, StreamRecord<IN> element) throws Exception {
        try {
            buffer.add(record, element.hasTimestamp(), element.getTimestamp(), () -> {
                flush();
                return true;
            });
        } catch (RecordConversionException e) {
            deadLetter(record, e, buffer.runner());
            return;
        }
        if (buffer.due()) {
            flush();
        }
    }

    /**
     * Scores everything in {@code buffer} as one batch and emits it in input order: each record as its result
     * (with its timestamp), or as a dead letter naming the model and version that failed it.
     */
    protected final void drain(RecordBuffer<IN, OUT> buffer) throws Exception {
        int count = buffer.take();
        if (count == 0) {
            return;
        }
        buffer.score(count, reports);
        buffer.complete(count, emitterFor(buffer.runner()));
    }

    /** Emits a completed batch: results to the main output, failures to the dead letters of {@code runner}. */
    protected final RecordBuffer.Emitter<IN, OUT> emitterFor(InferenceRunner<IN, OUT> runner) {
        return new RecordBuffer.Emitter<>() {
            @Override
            public void scored(int index, OUT result, boolean hasTimestamp, long timestamp) {
                if (hasTimestamp) {
                    output.collect(reuse.replace(result, timestamp));
                } else {
                    reuse.eraseTimestamp();
                    output.collect(reuse.replace(result));
                }
            }

            @Override
            public void failed(int index, IN record, Exception reason) {
                deadLetter(record, reason, runner);
            }
        };
    }

    /**
     * {@code record} to the failed-records output with the reason the engine gives, naming the model and the
     * version {@code runner} serves.
     */
    protected final void deadLetter(IN record, Exception e, InferenceRunner<IN, OUT> runner) {
        deadLetter(record, e, runner.modelName(), runner.version());
    }

    /** {@code record} to the failed-records output, naming a model that has no runner (it did not load). */
    protected final void deadLetter(IN record, Exception e, String model, String version) {
        failedRecords.inc();
        FailedRecord<IN> failed = new FailedRecord<>(
                record, InferenceRunner.reasonOf(e), model, e.getClass().getName());
        failed.modelVersion = version;
        output.collect(failedTag, new StreamRecord<>(failed));
    }
}
