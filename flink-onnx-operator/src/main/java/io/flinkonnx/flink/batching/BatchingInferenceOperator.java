package io.flinkonnx.flink.batching;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.versions.FolderMark;
import io.flinkonnx.flink.versions.ModelVersions;
import io.flinkonnx.flink.versions.ServingModel;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
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
@Internal
public class BatchingInferenceOperator<IN, OUT> extends BufferedScoringOperator<IN, OUT> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(BatchingInferenceOperator.class);
    /** How often a version that is loading is looked for, until it is ready. */
    private static final long LOADING_CHECK_MILLIS = 50;

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;
    /** Null when the model never changes. */
    private final ModelUpdates updates;

    private transient ModelVersions<IN, OUT> versions;
    private transient ListState<ServingModel> servingState;
    private transient ListState<ServingModel> pendingState;
    private transient ListState<FolderMark> folderState;
    private transient String restoredFound;
    private transient ServingModel restored;
    private transient List<ServingModel> restoredPending;
    private transient long nextPollMillis;
    private transient long updatesTimerMillis;

    private transient InferenceRunner<IN, OUT> runner;
    private transient DriftMonitor<IN> drift;
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
        if (updates == null) {
            return;
        }
        // Union: after rescaling every subtask sees every entry and takes its own index's, else the first.
        servingState = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>("onnx-serving-model", ServingModel.class));
        pendingState = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>("onnx-pending-model-updates", ServingModel.class));
        // Added later: a checkpoint from before has none, and the watcher starts afresh as it did then.
        folderState = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>("onnx-watched-folder-found", FolderMark.class));
        restoredPending = new ArrayList<>();
        if (context.isRestored()) {
            int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
            for (ServingModel entry : servingState.get()) {
                if (restored == null || entry.subtask == subtask) {
                    restored = entry;
                }
            }
            // Control messages read but not yet applied at the checkpoint: the source will not replay them.
            // This subtask's own, when it has a serving entry of its own (even if none was pending); else those of
            // the subtask whose serving entry it took, so that the two agree.
            List<ServingModel> pending = new ArrayList<>();
            pendingState.get().forEach(pending::add);
            int from = restored == null ? -1 : restored.subtask;
            for (ServingModel entry : pending) {
                if (entry.subtask == from) {
                    restoredPending.add(entry);
                }
            }
            // The watched folder's version handled already, by the same subtask: not promoted again (that would
            // undo a control-stream rollback at every failover).
            for (FolderMark mark : folderState.get()) {
                if (mark.subtask == from) {
                    restoredFound = mark.identity;
                }
            }
        }
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        if (versions != null) {
            // The buffer was scored before the barrier and swaps happen on this thread: every prediction
            // emitted since the last swap came from the version named here.
            servingState.update(List.of(versions.serving()));
            List<ServingModel> pending = new ArrayList<>();
            int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
            for (ModelUpdate u : versions.pendingControl()) {
                pending.add(new ServingModel(subtask, u.uri, u.sha256, u.version));
            }
            pendingState.update(pending);
            String found = versions.lastFound();
            folderState.update(found == null ? List.of() : List.of(new FolderMark(subtask, found)));
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        MetricGroup metrics = onnxMetrics();
        int capacity;
        if (updates == null) {
            runner = new InferenceRunner<>(spec);
            capacity = openRunner(runner, policy, metrics);
        } else {
            versions = new ModelVersions<>(
                    spec,
                    updates,
                    policy,
                    getRuntimeContext().getTaskInfo().getAllocationIDAsString(),
                    getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(),
                    getUserCodeClassloader(),
                    metrics);
            runner = versions.openServing(restored);
            versions.restoreLastFound(restoredFound);
            capacity = capacityOf(runner, policy); // ModelVersions registers the gauges over the serving runner
        }
        batchMetrics = new BatchMetrics(metrics);
        buffer = newBuffer(runner, capacity, policy, batchMetrics);
        output.collect(FallbackReport.TAG, new StreamRecord<>(runner.fallbackReport()));
        drift = runner.drift();
        if (drift.enabled()) {
            checkGoldenVectors(getProcessingTimeService().getCurrentProcessingTime());
        }
        if (versions != null) {
            long now = getProcessingTimeService().getCurrentProcessingTime();
            if (restored != null) {
                ModelUpdateReport report = new ModelUpdateReport();
                report.outcome = ModelUpdateReport.Outcome.RESTORED;
                report.uri = restored.uri;
                report.sha256 = restored.sha256;
                report.version = restored.version;
                report.servingVersion = restored.version;
                report.subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
                report.timestampMillis = now;
                LOG.info(
                        "Model {} serves version {} again, as the checkpoint named it",
                        spec.model().uri(),
                        restored);
                output.collect(ModelUpdateReport.TAG, new StreamRecord<>(report));
            }
            for (ServingModel pending : restoredPending) {
                versions.offer(new ModelUpdate(pending.uri, pending.sha256, pending.version));
            }
            nextPollMillis = updates.watchedFolder() == null ? Long.MAX_VALUE : now;
            updatesTimerMillis = Long.MAX_VALUE;
            checkUpdates(now);
        }
    }

    /** A control message (the control-stream operator's second input). */
    protected final void offerUpdate(ModelUpdate update) throws Exception {
        versions.offer(update);
        scheduleUpdatesTimer(getProcessingTimeService().getCurrentProcessingTime());
    }

    /**
     * On the task thread, between batches: swaps in the versions that finished loading (the buffer is
     * scored first, by the version it was buffered for), polls the watched folder when due, and sets the
     * next check.
     */
    private void checkUpdates(long now) throws Exception {
        applyFinishedUpdates(now);
        if (now >= nextPollMillis) {
            versions.poll();
            nextPollMillis = now + updates.pollInterval().toMillis();
        }
        scheduleUpdatesTimer(now);
    }

    private void scheduleUpdatesTimer(long now) {
        long next = versions.busy() ? now + LOADING_CHECK_MILLIS : nextPollMillis;
        if (next != Long.MAX_VALUE && (next < updatesTimerMillis || updatesTimerMillis <= now)) {
            updatesTimerMillis = next;
            getProcessingTimeService().registerTimer(next, this);
        }
    }

    private void applyFinishedUpdates(long now) throws Exception {
        List<ModelVersions.Step<IN, OUT>> steps = versions.takeReady();
        for (int i = 0; i < steps.size(); i++) {
            try {
                applyFinishedUpdate(steps.get(i), now);
            } catch (Exception | Error e) {
                // the task fails: the versions loaded and not yet serving are closed with it
                for (ModelVersions.Step<IN, OUT> untaken : steps.subList(i, steps.size())) {
                    if (untaken.runner != null && untaken.runner != runner) {
                        untaken.runner.close();
                    }
                }
                throw e;
            }
        }
    }

    private void applyFinishedUpdate(ModelVersions.Step<IN, OUT> step, long now) throws Exception {
        // a promoted version takes over once the buffer is scored by the version it was buffered for
        runner = versions.apply(step, runner, this::flush);
        if (runner != buffer.runner()) {
            buffer.serve(runner, capacityOf(runner, policy));
        }
        if (step.report.outcome == ModelUpdateReport.Outcome.PROMOTED) {
            drift = runner.drift();
            output.collect(FallbackReport.TAG, new StreamRecord<>(runner.fallbackReport()));
        }
        step.report.timestampMillis = now;
        output.collect(ModelUpdateReport.TAG, new StreamRecord<>(step.report));
    }

    /** The model versions of this operator, null without updates (for tests). */
    @VisibleForTesting
    public ModelVersions<IN, OUT> versions() {
        return versions;
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
        buffer(buffer, buffer.own(element.getValue()), element);
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        if (buffer.expired(time)) {
            flush();
        }
        if (drift.enabled()) {
            checkGoldenVectors(time);
        }
        if (versions != null) {
            checkUpdates(time);
        }
    }

    /** Scores everything buffered and emits the results in input order. */
    @Override
    protected void flush() throws Exception {
        if (buffer != null) {
            drain(buffer);
        }
    }

    /** The engine of this operator (open after {@link #open}). */
    @VisibleForTesting
    public InferenceRunner<IN, OUT> runner() {
        return runner;
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
            if (versions != null) {
                versions.close(); // stops loading; closes versions loaded but not yet serving
                versions = null;
            }
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
