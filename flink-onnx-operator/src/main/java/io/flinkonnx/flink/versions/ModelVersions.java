package io.flinkonnx.flink.versions;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The versions of one operator's model: which serves, and the updates on their way. Updates (control
 * messages, or what a poll of the watched folder finds) are loaded and gated one at a time on a thread of
 * their own; the task thread takes each finished one with {@link #takeReady} and swaps between batches.
 * Not thread-safe apart from that hand-over: every other method is called on the task thread.
 */
@Internal
public final class ModelVersions<IN, OUT> implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ModelVersions.class);
    private static final long CLOSE_WAIT_SECONDS = 60;

    /** A finished update: its report, and for a promotion the opened runner to serve with. */
    public static final class Step<IN, OUT> {
        public final ModelUpdateReport report;
        /** Open, ready to serve; null unless the report says PROMOTED. */
        public final InferenceRunner<IN, OUT> runner;

        final long requestedAtNanos;
        /** The control message this step answers, or null for what a poll found. */
        final ModelUpdate control;
        /** The watched folder's version this step handled for good (see {@link #lastFound()}), or null. */
        final String found;

        Step(
                ModelUpdateReport report,
                InferenceRunner<IN, OUT> runner,
                long requestedAtNanos,
                ModelUpdate control,
                String found) {
            this.report = report;
            this.runner = runner;
            this.requestedAtNanos = requestedAtNanos;
            this.control = control;
            this.found = found;
        }
    }

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final ModelUpdates settings;
    private final BatchPolicy policy;
    private final String slot;
    private final int subtask;
    private final ClassLoader userCode;
    /** The folder polled for new versions, or null. */
    private final String watchedFolder;
    /** Loads one at a time: this handle's own thread, or one a many-model operator shares among its models. */
    private final Executor loader;
    /** Whether {@link #loader} is this handle's own (shut down at close). */
    private final boolean ownsLoader;
    /**
     * Whether a control message that is applied marks the watched folder's newest version (read before it loads) as
     * handled, so that only a later version replaces the one the message pinned (a many-model track's rule).
     */
    private final boolean controlMarksFolder;

    private final Queue<Step<IN, OUT>> ready = new ArrayDeque<>();
    /** Set by the task thread at each swap (what serves now). */
    private volatile Serving serving;
    /**
     * What will serve once every update finished so far is applied, in order: what the loader judges the next
     * update against (an update that loads while another waits to be applied is compared with that one, not with
     * what served when it started). Set on the task thread before the first load, then by the loader only.
     */
    private volatile Serving projected;

    private int inFlight;
    private boolean closed;
    /**
     * Control messages offered and not yet taken (task thread only), kept in operator state: a message whose
     * offset a checkpoint has passed is loaded again after a restore from that checkpoint.
     */
    private final List<ModelUpdate> pendingControl = new java.util.ArrayList<>();
    /** The watched folder's version last handled (loaded, refused or found serving): not loaded again. */
    private volatile String lastFound;
    /**
     * The watched folder's version last handled by a step the task thread applied (task thread only), kept in
     * operator state: unlike {@link #lastFound} it never runs ahead of what the operator's output shows.
     */
    private String appliedFound;

    private volatile String lastPollError;
    /** The watched folder's version that last failed to load with an I/O error, and why (loader thread only). */
    private String lastLoadFailure;

    private final MetricGroup metrics;
    private final java.util.function.Function<OnnxInferenceSpec<IN, OUT>, InferenceRunner<IN, OUT>> runners;
    /** The labels that have a {@code model_info} gauge (one per version served in this operator's life). */
    private final java.util.Set<String> versionsWithMetrics = new java.util.HashSet<>();

    private final Counter updates;
    private final Counter refused;
    /** Where this handle's logs name the model. */
    private final String modelName;

    private volatile long swapLatencyMillis;
    /** The runner serving now, as the gauges read it (null once closed). */
    private volatile InferenceRunner<IN, OUT> servingRunner;

    /** What runs on the task thread just before a promoted version takes over (the operator scores its buffer). */
    @FunctionalInterface
    public interface BeforeSwap {
        void run() throws Exception;
    }

    /** Candidate versions whose runner this loader opened (for tests: a version judged by its bytes opens none). */
    private final java.util.concurrent.atomic.AtomicLong candidatesOpened =
            new java.util.concurrent.atomic.AtomicLong();

    /** For tests: candidate versions opened so far, each a session's load. */
    @VisibleForTesting
    public long candidatesOpened() {
        return candidatesOpened.get();
    }

    /**
     * For tests: what the loader runs once a candidate is read (opened, or found to be the serving bytes), before
     * it is judged (a slow load's seam).
     */
    @VisibleForTesting
    @FunctionalInterface
    public interface LoadSeam {
        void opened(String uri) throws Exception;
    }

    private volatile LoadSeam seam;

    /** For tests: {@code seam} runs on the loader thread at every load, once the candidate is open. */
    @VisibleForTesting
    public void seam(LoadSeam seam) {
        this.seam = seam;
    }

    /** What serves now, as the loader compares candidates with it. */
    private static final class Serving {
        final ServingModel model;
        final ModelSignature signature;

        Serving(ServingModel model, ModelSignature signature) {
            this.model = model;
            this.signature = signature;
        }
    }

    public ModelVersions(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelUpdates settings,
            BatchPolicy policy,
            String slot,
            int subtask,
            ClassLoader userCode,
            MetricGroup metrics) {
        this(spec, settings, policy, slot, subtask, userCode, metrics, InferenceRunner::new);
    }

    /** With {@code runners} making each version's (unopened) runner: a stateful model's supplies its states. */
    public ModelVersions(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelUpdates settings,
            BatchPolicy policy,
            String slot,
            int subtask,
            ClassLoader userCode,
            MetricGroup metrics,
            java.util.function.Function<OnnxInferenceSpec<IN, OUT>, InferenceRunner<IN, OUT>> runners) {
        this(
                spec,
                settings,
                settings.watchedFolder(),
                policy,
                slot,
                subtask,
                userCode,
                newLoader(subtask, userCode),
                true,
                false,
                metrics,
                metrics.counter("model_updates"),
                metrics.counter("model_updates_refused"),
                runners);
        // Null-safe: a reporter may read before the first version serves.
        metrics.gauge("model_version", (Gauge<String>) () -> serving == null ? null : serving.model.version);
        metrics.gauge("model_swap_latency_milli_secs", (Gauge<Long>) () -> swapLatencyMillis);
        // The runner's own gauges, registered once over whichever version serves.
        InferenceRunner.registerMetrics(metrics, () -> servingRunner);
        if (spec.drift().enabled()) {
            DriftMonitor.registerMetrics(metrics, () -> {
                InferenceRunner<IN, OUT> r = servingRunner;
                return r == null ? null : r.drift();
            });
        }
    }

    private ModelVersions(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelUpdates settings,
            String watchedFolder,
            BatchPolicy policy,
            String slot,
            int subtask,
            ClassLoader userCode,
            Executor loader,
            boolean ownsLoader,
            boolean controlMarksFolder,
            MetricGroup metrics,
            Counter updates,
            Counter refused,
            java.util.function.Function<OnnxInferenceSpec<IN, OUT>, InferenceRunner<IN, OUT>> runners) {
        this.runners = runners;
        this.spec = spec;
        this.settings = settings;
        this.watchedFolder = watchedFolder;
        this.policy = policy;
        this.slot = slot;
        this.subtask = subtask;
        this.userCode = userCode;
        this.loader = loader;
        this.ownsLoader = ownsLoader;
        this.controlMarksFolder = controlMarksFolder;
        this.metrics = metrics;
        this.updates = updates;
        this.refused = refused;
        this.modelName = spec.model().uri();
    }

    private static ExecutorService newLoader(int subtask, ClassLoader userCode) {
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "onnx-model-updates-" + subtask);
            t.setDaemon(true);
            t.setContextClassLoader(userCode);
            return t;
        });
    }

    /**
     * The versions of one model of a many-model operator, while it is loaded: {@code spec} is the model's own (its
     * file, its EP chain), {@code watchedFolder} its folder or null, {@code loader} the operator's loader thread
     * (shared by its models, not shut down here), and the counters the operator's; no gauges of its own. An applied
     * control message marks the folder's newest version as handled. Start it with {@link #startFrom}.
     */
    public static <IN, OUT> ModelVersions<IN, OUT> ofTrack(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelUpdates settings,
            String watchedFolder,
            BatchPolicy policy,
            String slot,
            int subtask,
            Executor loader,
            Counter updates,
            Counter refused) {
        return new ModelVersions<>(
                spec,
                settings,
                watchedFolder,
                policy,
                slot,
                subtask,
                null,
                loader,
                false,
                true,
                null,
                updates,
                refused,
                InferenceRunner::new);
    }

    /**
     * Opens the runner to serve first, on the task thread (job start): the restored version, pinned to its
     * sha256, or else the spec's model.
     */
    public InferenceRunner<IN, OUT> openServing(ServingModel restored) throws Exception {
        ModelSource source =
                restored == null ? spec.model() : ModelSource.of(restored.uri).withSha256(restored.sha256);
        InferenceRunner<IN, OUT> runner = runners.apply(spec.withModel(source));
        try {
            runner.open(slot, subtask, null, policy.maxBatchSize(), policy);
        } catch (Exception e) {
            runner.close();
            if (restored != null) {
                throw new IllegalStateException(
                        "Cannot restore model version " + restored + ", which the checkpoint"
                                + " names (keep a version's files while a checkpoint may restore it): "
                                + e.getMessage(),
                        e);
            }
            throw e;
        }
        String label = restored != null
                ? restored.version
                : ModelFolder.labelOf(spec.model().uri());
        runner.version(label); // predictions name the restored label, not the file's default one
        served(runner, label);
        projected = serving;
        return runner;
    }

    /**
     * Starts from a runner opened elsewhere (a many-model operator's load): {@code runner} serves as {@code label},
     * updates are judged against it, and {@code found} (or null) is the watched folder's version handled already.
     */
    public void startFrom(InferenceRunner<IN, OUT> runner, String label, String found) {
        served(runner, label);
        projected = serving;
        restoreLastFound(found);
    }

    /** The version serving now. */
    public ServingModel serving() {
        return serving.model;
    }

    /** After a swap on the task thread: {@code runner} serves as {@code label} (and the gauges read it). */
    public void served(InferenceRunner<IN, OUT> runner, String label) {
        servingRunner = runner;
        serving = new Serving(
                new ServingModel(
                        subtask, runner.spec().model().uri(), runner.session().modelSha256(), label),
                runner.signature());
        if (metrics != null && label != null && versionsWithMetrics.add(label)) {
            InferenceRunner.registerVersion(metrics, label, () -> {
                Serving s = serving;
                return s == null ? null : s.model.version;
            });
        }
    }

    /**
     * Takes a finished update over on the task thread and returns the runner to score with: for a promotion the
     * step's (after {@code beforeSwap}; {@code current} is then closed), else {@code current}. Counts and logs the
     * outcome and completes its report ({@code servingVersion}, {@code swapLatencyMillis}).
     */
    public InferenceRunner<IN, OUT> apply(Step<IN, OUT> step, InferenceRunner<IN, OUT> current, BeforeSwap beforeSwap)
            throws Exception {
        ModelUpdateReport report = step.report;
        InferenceRunner<IN, OUT> next = current;
        switch (report.outcome) {
            case PROMOTED:
                beforeSwap.run();
                next = step.runner;
                next.version(report.version);
                served(next, report.version);
                current.close();
                swapLatencyMillis = latencyMillis(step);
                report.swapLatencyMillis = swapLatencyMillis;
                updates.inc();
                LOG.info(
                        "Model {} now serves version {} ({}, sha256 {}) after {} ms",
                        modelName,
                        report.version,
                        report.uri,
                        report.sha256,
                        swapLatencyMillis);
                break;
            case ALREADY_SERVING:
                current.version(report.version);
                served(current, report.version);
                break;
            default:
                refused.inc();
                LOG.warn(
                        "Model update {} ({}) of model {} refused; version {} serves on: {}",
                        report.version,
                        report.uri,
                        modelName,
                        serving.model.version,
                        report.reason);
        }
        if (step.found != null) {
            appliedFound = step.found;
        }
        report.servingVersion = serving.model.version;
        return next;
    }

    /**
     * The watched folder's version last handled by an applied update (its {@link ModelFolder.Version#identity()}),
     * or null: for operator state.
     */
    public String lastFound() {
        return appliedFound;
    }

    /** After a restore, before the first poll: the watched folder's version handled already (null if none). */
    public void restoreLastFound(String identity) {
        appliedFound = identity;
        lastFound = identity;
    }

    /** A control message: loaded and gated after those before it. */
    public void offer(ModelUpdate update) {
        long requested = System.nanoTime();
        pendingControl.add(update);
        submit(() -> {
            // read first: a version published while the message loads is newer than the one it pins
            String newest = controlMarksFolder ? newestIdentity() : null;
            load(update, requested, update, null, newest);
        });
    }

    /**
     * Steps taken with {@link #takeReady} and not applied (the model's session broke while its buffer drained):
     * their control messages are pending again, first and in order, their folder versions unhandled; their versions
     * are closed.
     */
    public void putBack(List<Step<IN, OUT>> untaken) {
        List<ModelUpdate> again = new java.util.ArrayList<>();
        for (Step<IN, OUT> step : untaken) {
            if (step.control != null) {
                again.add(step.control);
            }
            if (step.runner != null) {
                step.runner.close();
            }
        }
        pendingControl.addAll(0, again);
        lastFound = appliedFound; // polled again
    }

    private String newestIdentity() {
        if (watchedFolder == null) {
            return null;
        }
        try {
            return ModelFolder.newest(watchedFolder)
                    .map(ModelFolder.Version::identity)
                    .orElse(null);
        } catch (IOException | RuntimeException e) {
            LOG.warn("Cannot read the watched model folder {}: {}", watchedFolder, e.getMessage());
            return null;
        }
    }

    /** Control messages offered and not yet applied, in order (for operator state). */
    public List<ModelUpdate> pendingControl() {
        return List.copyOf(pendingControl);
    }

    /** Looks for a newer version in the watched folder (off the task thread), and loads it if there is one. */
    public void poll() {
        if (watchedFolder == null) {
            return;
        }
        synchronized (this) {
            if (inFlight > 0) {
                return; // a poll or load is under way: the next poll looks again
            }
        }
        long requested = System.nanoTime();
        submit(() -> pollFolder(requested));
    }

    private void submit(Runnable task) {
        synchronized (this) {
            if (closed) {
                return;
            }
            inFlight++;
        }
        loader.execute(() -> {
            try {
                task.run();
            } finally {
                synchronized (this) {
                    inFlight--;
                    notifyAll();
                }
            }
        });
    }

    /** Whether a poll or load is under way or its result waits to be taken. */
    public synchronized boolean busy() {
        return inFlight > 0 || !ready.isEmpty();
    }

    /** The finished updates, in the order they finished (the task thread applies them in turn). */
    public synchronized List<Step<IN, OUT>> takeReady() {
        if (ready.isEmpty()) {
            return List.of();
        }
        List<Step<IN, OUT>> steps = List.copyOf(ready);
        ready.clear();
        for (Step<IN, OUT> step : steps) {
            if (step.control != null) {
                pendingControl.remove(step.control); // answered in offer order: the first equal one is it
            }
        }
        return steps;
    }

    /** Swap latency of {@code step}, from its request to now. */
    public static long latencyMillis(Step<?, ?> step) {
        return (System.nanoTime() - step.requestedAtNanos) / 1_000_000;
    }

    /** For tests: waits until no poll or load is under way (results may wait in {@link #takeReady}). */
    @VisibleForTesting
    public synchronized boolean awaitLoaded(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (inFlight > 0) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedWait(this, left);
        }
        return true;
    }

    private void pollFolder(long requested) {
        ModelFolder.Version newest;
        try {
            newest = ModelFolder.newest(watchedFolder).orElse(null);
            lastPollError = null;
        } catch (Exception e) {
            String message = "Cannot read the watched model folder " + watchedFolder + ": " + e.getMessage();
            if (!message.equals(lastPollError)) { // once per distinct problem, not at every poll
                lastPollError = message;
                LOG.warn(message);
                finish(
                        report(ModelUpdateReport.Outcome.REFUSED, watchedFolder, null, null, message),
                        null,
                        requested,
                        null);
            }
            return;
        }
        if (newest == null || newest.identity().equals(lastFound)) {
            lastLoadFailure = null; // the folder read well: a version's problem that comes back is reported again
            return;
        }
        ModelUpdate update = new ModelUpdate(newest.modelUri, newest.sha256, newest.label);
        if (load(update, requested, null, newest.identity(), null)) {
            // not loaded again at every poll; after a transient failure (an I/O error) it is, at the next poll
            lastFound = newest.identity();
        }
    }

    /**
     * Loads and gates {@code update} on the loader thread ({@link VersionGate#judge}) and hands the outcome to the
     * task thread (answering {@code control}, the control message, if it came from one; {@code found}, the watched
     * folder's version, if a poll found it). Returns false when another try may end otherwise: the model could not
     * be read (an I/O error), or its file changed while it loaded, as opposed to a model that is invalid or refused.
     * {@code marks}: the folder's version a control message marks as handled once it is applied, or null.
     */
    private boolean load(ModelUpdate update, long requested, ModelUpdate control, String found, String marks) {
        Serving current = projected;
        VersionGate.Verdict<IN, OUT> verdict = VersionGate.judge(
                update,
                found != null,
                current.model,
                current.signature,
                settings,
                subtask,
                (source, label) -> {
                    InferenceRunner<IN, OUT> candidate = runners.apply(spec.withModel(source));
                    candidatesOpened.incrementAndGet();
                    try {
                        candidate.open(slot, subtask, null, policy.maxBatchSize(), policy);
                        return candidate;
                    } catch (Exception | Error e) {
                        candidate.close();
                        throw e;
                    }
                },
                uri -> {
                    LoadSeam s = seam; // read once the candidate is read: a test may set it meanwhile
                    if (s != null) {
                        s.opened(uri);
                    }
                });
        ModelUpdateReport report = verdict.report;
        if (report == null) {
            return false; // replaced while it loaded: the next poll loads the replacement, no report
        }
        if (verdict.readError && found != null) {
            // tried again at every poll, reported once per distinct problem
            String failure = found + "\n" + report.reason;
            if (failure.equals(lastLoadFailure)) {
                return false;
            }
            lastLoadFailure = failure;
        } else if (found != null) {
            lastLoadFailure = null;
        }
        if (verdict.runner != null) {
            projected = new Serving(
                    new ServingModel(subtask, verdict.runner.spec().model().uri(), report.sha256, report.version),
                    verdict.runner.signature());
        } else if (report.outcome == ModelUpdateReport.Outcome.ALREADY_SERVING) {
            projected = new Serving(
                    new ServingModel(subtask, current.model.uri, current.model.sha256, report.version),
                    current.signature);
        }
        String handled = verdict.readError ? null : found;
        if (marks != null
                && (report.outcome == ModelUpdateReport.Outcome.PROMOTED
                        || report.outcome == ModelUpdateReport.Outcome.ALREADY_SERVING)) {
            handled = marks;
            lastFound = marks;
        }
        finish(report, verdict.runner, requested, control, handled);
        return !verdict.readError;
    }

    private ModelUpdateReport report(
            ModelUpdateReport.Outcome outcome, String uri, String version, String sha256, String reason) {
        return ModelUpdateReport.of(outcome, uri, version, sha256, reason, subtask);
    }

    private void finish(
            ModelUpdateReport report, InferenceRunner<IN, OUT> runner, long requested, ModelUpdate control) {
        finish(report, runner, requested, control, null);
    }

    private void finish(
            ModelUpdateReport report,
            InferenceRunner<IN, OUT> runner,
            long requested,
            ModelUpdate control,
            String found) {
        synchronized (this) {
            if (!closed) {
                ready.add(new Step<>(report, runner, requested, control, found));
                return;
            }
        }
        if (runner != null) {
            runner.close(); // the operator closed while this version loaded
        }
    }

    /** Stops the loader (waiting for a load under way) and closes every version not taken. */
    @Override
    public void close() {
        servingRunner = null;
        Collection<Step<IN, OUT>> left;
        synchronized (this) {
            closed = true;
            left = List.copyOf(ready);
            ready.clear();
        }
        if (ownsLoader) { // a shared loader's owner stops it; a load under way closes its version when it ends
            ExecutorService own = (ExecutorService) loader;
            own.shutdownNow();
            try {
                if (!own.awaitTermination(CLOSE_WAIT_SECONDS, TimeUnit.SECONDS)) {
                    LOG.warn(
                            "A model version was still loading {} s after close; its session is closed when it ends",
                            CLOSE_WAIT_SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        for (Step<IN, OUT> step : left) {
            if (step.runner != null) {
                step.runner.close();
            }
        }
    }
}
