package io.flinkonnx.flink.batching;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.versions.ModelServing;
import io.flinkonnx.flink.versions.ModelVersions;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Packs records into tensors along the model's batch axis and scores each batch in one ORT run, on the
 * task thread (see the README for why and the numbers).
 *
 * <p>Nothing buffered is lost: the buffer is scored before every checkpoint barrier
 * ({@link #prepareSnapshotPreBarrier}), before every watermark, and at end of input, so a checkpoint
 * never holds a record that was taken from the source but not yet emitted. Output order is input order within
 * a subtask. A record that does not convert goes to the failed-records side output at once; if a run fails,
 * the batch is split in halves until the failing records are isolated, and the rest is scored. What serves is
 * the {@link ModelServing} handle's: a fixed model, or the versions of a watched folder or a control stream
 * (then the serving version is operator state).
 */
@Internal
public class BatchingInferenceOperator<IN, OUT> extends BufferedScoringOperator<IN, OUT> {
    private static final long serialVersionUID = 1L;

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;
    /** Null when the model never changes. */
    private final ModelUpdates updates;

    private transient ModelServing<IN, OUT> serving;
    private transient RecordBuffer<IN, OUT> buffer;
    private transient BatchMetrics batchMetrics;

    public BatchingInferenceOperator(
            OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, OutputTag<FailedRecord<IN>> failedTag) {
        this(spec, policy, failedTag, null);
    }

    public BatchingInferenceOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            OutputTag<FailedRecord<IN>> failedTag,
            ModelUpdates updates) {
        super(failedTag);
        this.spec = spec;
        this.policy = policy;
        this.updates = updates;
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        serving = new ModelServing<>(spec, policy, updates, InferenceRunner::new);
        serving.initializeState(context, getRuntimeContext().getTaskInfo().getIndexOfThisSubtask());
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        serving.snapshotState();
    }

    @Override
    public void open() throws Exception {
        super.open();
        batchMetrics = new BatchMetrics(onnxMetrics());
        serving.open(
                ModelServing.host(
                        timers(),
                        this::flush,
                        runner -> buffer = bufferFor(buffer, runner, policy, batchMetrics),
                        this::sideOutput),
                getRuntimeContext().getTaskInfo().getAllocationIDAsString(),
                getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(),
                getUserCodeClassloader(),
                onnxMetrics());
    }

    /** A control message (the control-stream operator's second input). */
    protected final void offerUpdate(ModelUpdate update) {
        serving.offer(update);
    }

    @Override
    public void processElement(StreamRecord<IN> element) throws Exception {
        buffer(buffer, buffer.own(element.getValue()), element);
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        if (buffer.expired(time)) {
            flush();
        }
        serving.onTimer(time);
    }

    /** Scores everything buffered and emits the results in input order. */
    @Override
    protected void flush() throws Exception {
        if (buffer != null) {
            drain(buffer);
        }
    }

    /** The model versions of this operator, null without updates. */
    @VisibleForTesting
    public ModelVersions<IN, OUT> versions() {
        return serving.versions();
    }

    /** The engine serving now (open after {@link #open}). */
    @VisibleForTesting
    public InferenceRunner<IN, OUT> runner() {
        return serving.runner();
    }

    /** Batches in which a run failed (isolation was needed), however many runs the isolation took. */
    @VisibleForTesting
    public long failedBatchesCount() {
        return batchMetrics.failedBatches();
    }

    /** The batch metrics of this operator. */
    @VisibleForTesting
    public BatchMetrics batchMetrics() {
        return batchMetrics;
    }

    /** The record buffer of this operator (open after {@link #open}). */
    @VisibleForTesting
    public RecordBuffer<IN, OUT> buffer() {
        return buffer;
    }

    @Override
    public void close() throws Exception {
        try {
            if (serving != null) {
                serving.close(); // stops loading; closes the versions and the serving runner (its drift monitor too)
                serving = null;
            }
        } finally {
            super.close();
        }
    }
}
