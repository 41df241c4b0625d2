package io.flinkonnx.flink.versions;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The runner that serves now, for one operator: a fixed model, or the versions of a watched folder or a control
 * stream ({@link ModelUpdates}). It owns what serving takes beyond scoring: opening the runner, the fallback
 * report at start and at each swap, golden-vector drift checks on their timer, and with updates the versions
 * (loaded off the task thread, gated, swapped in message order between batches, after the operator's buffer is
 * scored by the version it was buffered for) and their place in checkpoints (the serving version, the control
 * messages read but not applied, the watched folder's last version), so a restore serves what the checkpoint
 * names. The batching and the stateful operator hold one each.
 *
 * <p>Used on the task thread only. The operator calls {@link #initializeState}, {@link #open}, {@link #snapshotState}
 * from its own, {@link #onTimer} from its processing-time callback, and {@link #close}.
 *
 * @param <IN> the record type
 * @param <OUT> the result type
 */
@Internal
public final class ModelServing<IN, OUT> implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ModelServing.class);
    /** How often a version that is loading is looked for, until it is ready. */
    private static final long LOADING_CHECK_MILLIS = 50;

    /** What serving needs from its operator. */
    public interface Host<IN, OUT> {
        /** Processing time now. */
        long now();

        /** Calls the operator's processing-time callback at {@code time}, which calls {@link #onTimer}. */
        void registerTimer(long time);

        /** Scores everything buffered, with the runner serving now: a swap follows. */
        void flush() throws Exception;

        /** {@code runner} serves from now on; the buffer is empty. */
        void serve(InferenceRunner<IN, OUT> runner) throws Exception;

        /** A report to a side output. */
        <T> void report(OutputTag<T> tag, T report);
    }

    /** Scores everything buffered with the runner serving now. */
    @FunctionalInterface
    public interface Flush {
        void flush() throws Exception;
    }

    /** Makes {@code runner} the one the operator's buffer encodes for. */
    @FunctionalInterface
    public interface Serve<IN, OUT> {
        void serve(InferenceRunner<IN, OUT> runner) throws Exception;
    }

    /** Where reports go: the operator's side outputs. */
    @FunctionalInterface
    public interface SideOutputs {
        <T> void report(OutputTag<T> tag, T report);
    }

    /** A host made of an operator's parts: its timers, its flush, how it serves a runner, its side outputs. */
    public static <IN, OUT> Host<IN, OUT> host(
            RecordBuffer.Timers timers, Flush flush, Serve<IN, OUT> serve, SideOutputs sideOutputs) {
        return new Host<>() {
            @Override
            public long now() {
                return timers.now();
            }

            @Override
            public void registerTimer(long time) {
                timers.register(time);
            }

            @Override
            public void flush() throws Exception {
                flush.flush();
            }

            @Override
            public void serve(InferenceRunner<IN, OUT> runner) throws Exception {
                serve.serve(runner);
            }

            @Override
            public <T> void report(OutputTag<T> tag, T report) {
                sideOutputs.report(tag, report);
            }
        };
    }

    /**
     * A host for a runtime that scores without timers, buffers nothing between runs and has no side outputs (the
     * ML_PREDICT functions): it takes versions over and checks golden vectors in {@link #beforeRun}, polls with
     * {@link #poll} from a timer of its own, and logs what an operator would report.
     */
    public static <IN, OUT> Host<IN, OUT> withoutTimers() {
        return new Host<>() {
            @Override
            public long now() {
                return System.currentTimeMillis();
            }

            @Override
            public void registerTimer(long time) {
                // checked at every run instead (beforeRun)
            }

            @Override
            public void flush() {
                // nothing is buffered between runs
            }

            @Override
            public void serve(InferenceRunner<IN, OUT> runner) {
                // beforeRun returns the runner serving now
            }

            @Override
            public <T> void report(OutputTag<T> tag, T report) {
                LOG.debug("{}: {}", tag.getId(), report); // no side outputs: gauges and the log tell
            }
        };
    }

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;
    /** The label the first version serves under when no checkpoint names one, or null (the model file's). */
    private String initialLabel;
    /** Null when the model never changes. */
    private final ModelUpdates updates;
    /** Makes an unopened runner of a spec (with the inputs the operator supplies, if any). */
    private final Function<OnnxInferenceSpec<IN, OUT>, InferenceRunner<IN, OUT>> runners;

    private ListState<ServingModel> servingState;
    private ListState<ServingModel> pendingState;
    private ListState<FolderMark> folderState;
    private String restoredFound;
    private ServingModel restored;
    private final List<ServingModel> restoredPending = new ArrayList<>();

    private Host<IN, OUT> host;
    private ModelVersions<IN, OUT> versions;
    private InferenceRunner<IN, OUT> runner;
    private DriftMonitor<IN> drift;
    private int subtask;
    private long nextPollMillis = Long.MAX_VALUE;
    private long updatesTimerMillis = Long.MAX_VALUE;

    /**
     * @param updates how new versions arrive, or null for a model that never changes
     * @param runners makes an unopened runner of a spec (for every version)
     */
    public ModelServing(
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            ModelUpdates updates,
            Function<OnnxInferenceSpec<IN, OUT>, InferenceRunner<IN, OUT>> runners) {
        this.spec = spec;
        this.policy = policy;
        this.updates = updates;
        this.runners = runners;
    }

    /**
     * The label the first version serves under when no checkpoint names one (an ML_PREDICT plan's label of the
     * watched folder's version it chose); without it, the model file's own label.
     */
    public ModelServing<IN, OUT> initialLabel(String label) {
        this.initialLabel = label;
        return this;
    }

    /** Whether versions can change while the job runs. */
    public boolean updatable() {
        return updates != null;
    }

    /** Restores what the checkpoint names for this subtask (nothing without updates). */
    public void initializeState(StateInitializationContext context, int subtask) throws Exception {
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
        if (!context.isRestored()) {
            return;
        }
        for (ServingModel entry : servingState.get()) {
            if (restored == null || entry.subtask == subtask) {
                restored = entry;
            }
        }
        // Control messages read but not yet applied at the checkpoint: the source will not replay them. This
        // subtask's own, when it has a serving entry of its own (even if none was pending); else those of the
        // subtask whose serving entry it took, so that the two agree.
        int from = restored == null ? -1 : restored.subtask;
        for (ServingModel entry : pendingState.get()) {
            if (entry.subtask == from) {
                restoredPending.add(entry);
            }
        }
        // The watched folder's version handled already, by the same subtask: not promoted again (that would undo a
        // control-stream rollback at every failover).
        for (FolderMark mark : folderState.get()) {
            if (mark.subtask == from) {
                restoredFound = mark.identity;
            }
        }
    }

    /**
     * Writes the serving version, the control messages not yet applied and the folder's last version. The buffer
     * was scored before the barrier and swaps happen on the task thread: every prediction emitted since the last
     * swap came from the version named here.
     */
    public void snapshotState() throws Exception {
        if (versions == null) {
            return;
        }
        servingState.update(List.of(versions.serving()));
        List<ServingModel> pending = new ArrayList<>();
        for (ModelUpdate u : versions.pendingControl()) {
            pending.add(new ServingModel(subtask, u.uri, u.sha256, u.version));
        }
        pendingState.update(pending);
        String found = versions.lastFound();
        folderState.update(found == null ? List.of() : List.of(new FolderMark(subtask, found)));
    }

    /**
     * Opens the runner to serve first (the restored version, or the spec's model), reports its placement,
     * checks the golden vectors, and with updates takes up the restored control messages and starts watching.
     * Fails at job start on a bad model, naming it.
     */
    public InferenceRunner<IN, OUT> open(
            Host<IN, OUT> host, String slot, int subtask, ClassLoader userCode, MetricGroup metrics) throws Exception {
        this.host = host;
        this.subtask = subtask;
        if (updates == null) {
            runner = runners.apply(spec);
            runner.open(slot, subtask, metrics, policy.maxBatchSize(), policy);
        } else {
            versions = new ModelVersions<>(spec, updates, policy, slot, subtask, userCode, metrics, runners);
            runner = versions.openServing(restored); // ModelVersions registers the gauges over the serving runner
            if (restored == null && initialLabel != null) {
                runner.version(initialLabel);
                versions.served(runner, initialLabel);
            }
            versions.restoreLastFound(restoredFound);
        }
        host.serve(runner);
        host.report(FallbackReport.TAG, runner.fallbackReport());
        drift = runner.drift();
        long now = host.now();
        if (drift.enabled()) {
            checkGoldenVectors(now);
        }
        if (versions != null) {
            if (restored != null) {
                ModelUpdateReport report = ModelUpdateReport.of(
                        ModelUpdateReport.Outcome.RESTORED,
                        restored.uri,
                        restored.version,
                        restored.sha256,
                        null,
                        subtask);
                report.servingVersion = restored.version;
                report.timestampMillis = now;
                LOG.info(
                        "Model {} serves version {} again, as the checkpoint named it",
                        spec.model().uri(),
                        restored);
                host.report(ModelUpdateReport.TAG, report);
            }
            for (ServingModel pending : restoredPending) {
                versions.offer(new ModelUpdate(pending.uri, pending.sha256, pending.version));
            }
            nextPollMillis = updates.watchedFolder() == null ? Long.MAX_VALUE : now;
            updatesTimerMillis = Long.MAX_VALUE;
            checkUpdates(now);
        }
        return runner;
    }

    /** The runner serving now. */
    public InferenceRunner<IN, OUT> runner() {
        return runner;
    }

    /** The label of the version serving now, or null for a model that never changes. */
    public String servingVersion() {
        return versions == null ? null : versions.serving().version;
    }

    /**
     * For a runtime without timers ({@link #withoutTimers}), between runs on the thread that scores: takes over the
     * versions loaded since (nothing is buffered) and checks the golden vectors when due (a check that fails is
     * logged: the gauges keep the last result). Never waits for a load.
     *
     * @return the runner to score with now
     */
    public InferenceRunner<IN, OUT> beforeRun() throws Exception {
        long now = host.now();
        if (versions != null) {
            applyFinishedUpdates(now);
        }
        if (drift != null && drift.enabled()) {
            try {
                checkGoldenVectors(now);
            } catch (Exception e) {
                LOG.warn("Golden-vector drift check of model {} failed: {}", runner.modelName(), e.getMessage());
            }
        }
        return runner;
    }

    /** Starts a poll of the watched folder (thread-safe: it runs on the loader thread); for a runtime's own timer. */
    public void poll() {
        ModelVersions<IN, OUT> v = versions;
        if (v != null) {
            v.poll();
        }
    }

    /** A control message: loaded off the task thread, applied in message order between batches. */
    public void offer(ModelUpdate update) {
        versions.offer(update);
        scheduleUpdatesTimer(host.now());
    }

    /** The operator's processing-time callback: golden vectors when due, versions loaded, the folder polled. */
    public void onTimer(long time) throws Exception {
        if (drift != null && drift.enabled()) {
            checkGoldenVectors(time);
        }
        if (versions != null) {
            checkUpdates(time);
        }
    }

    /** Golden vectors at start, then on a processing-time timer. */
    private void checkGoldenVectors(long now) throws Exception {
        if (drift.goldenDue(now)) {
            host.report(DriftReport.TAG, drift.checkGolden(now));
            host.registerTimer(drift.nextGoldenMillis());
        }
    }

    /**
     * Swaps in the versions that finished loading (the buffer is scored first, by the version it was buffered
     * for), polls the watched folder when due, and sets the next check.
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
            host.registerTimer(next);
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
        InferenceRunner<IN, OUT> next = versions.apply(step, runner, host::flush);
        if (next != runner) {
            runner = next;
            host.serve(runner);
        }
        if (step.report.outcome == ModelUpdateReport.Outcome.PROMOTED) {
            drift = runner.drift();
            host.report(FallbackReport.TAG, runner.fallbackReport());
        }
        step.report.timestampMillis = now;
        host.report(ModelUpdateReport.TAG, step.report);
    }

    /** The versions of this handle, null without updates. */
    @VisibleForTesting
    public ModelVersions<IN, OUT> versions() {
        return versions;
    }

    /** Stops loading, closes versions loaded but not serving, then the serving runner (and its drift monitor). */
    @Override
    public void close() {
        try {
            if (versions != null) {
                versions.close();
                versions = null;
            }
        } finally {
            if (runner != null) {
                runner.close();
                runner = null;
                drift = null;
            }
        }
    }
}
