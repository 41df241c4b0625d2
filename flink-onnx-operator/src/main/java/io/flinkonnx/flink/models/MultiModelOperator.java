package io.flinkonnx.flink.models;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.versions.ModelFolder;
import io.flinkonnx.flink.versions.ModelVersions;
import io.flinkonnx.flink.versions.ServingModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.VersionLabel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Scores each record with the model its {@link ModelSelector} names: a buffer and batches per model (with the
 * batching operator's byte bound, {@link io.flinkonnx.flink.engine.BatchBytes}), an
 * LRU of at most {@code maxModels} sessions and {@code maxModelBytes} per subtask, models loaded off the
 * task thread. Every buffer is scored before a checkpoint barrier, a watermark and at end of input (records
 * waiting for a model to load are scored too: the operator waits for the load), so nothing buffered is
 * lost. Order is kept per model; records of different models leave in the order their batches run.
 *
 * <p>Updatable models ({@link ModelTrack}): a {@linkplain ModelRef#watch watched folder} serves its newest version,
 * polled every {@link ModelUpdates#pollInterval()}; a control message ({@link ModelUpdate#model}) pins the model it
 * addresses. A loaded such model has a {@link ModelVersions} of its own (on this operator's loader thread): a new
 * version is loaded and gated off the task thread against the version the model serves, and swapped in between
 * its batches (its buffer scored by the old version first). The version each such model serves,
 * the watched folder's version handled last and the messages not yet applied are operator state (union list
 * "onnx-per-model-versions"), so a restore serves the versions the checkpoint names.
 */
@Internal
public class MultiModelOperator<IN, OUT> extends BufferedScoringOperator<IN, OUT> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(MultiModelOperator.class);
    /** How often loads under way are looked at, while there are any. */
    private static final long LOADING_CHECK_MILLIS = 20;
    /** Failed models remembered (each holds no session) beyond which the oldest are forgotten. */
    private static final int FAILED_MODELS_KEPT = 256;
    /**
     * Models (version labels) with metrics of their own, the first to load; the rest share the group
     * {@code model=other}.
     */
    public static final int MODELS_WITH_METRICS = 1000;
    /** Batches each per-model histogram keeps: 3 KB of samples a model rather than 24 KB. */
    private static final int MODEL_HISTOGRAM_WINDOW = 128;
    /**
     * The label of the metrics shared by the models past {@link #MODELS_WITH_METRICS} (and by a model whose own
     * label it is).
     */
    public static final String OTHER_MODELS = "other";

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final ModelSelector<IN> selector;
    private final BatchPolicy policy;
    private final ModelCache cache;
    /** How updatable models change: the poll interval and the gate. */
    private final ModelUpdates updates;

    /** Access order: the least recently used model first. */
    private transient LinkedHashMap<ModelRef, ServedModel<IN, OUT>> models;

    private transient ExecutorService loader;
    private transient ModelRef specModel;
    private transient String slot;
    private transient int subtask;
    private transient long delayMillis;
    private transient long loadingCheckAt;
    private transient MetricGroup metrics;
    /** Per metrics label: at most {@link #MODELS_WITH_METRICS} models' own, and {@link #OTHER_MODELS}. */
    private transient Map<String, BatchMetrics> metricsByModel;
    /** Each watched folder's label, unique among this operator's watched folders. */
    private transient Map<String, String> folderLabels;

    private transient Counter evictions;
    private transient Counter loadFailures;
    /** Read by the metrics reporter's thread: kept here rather than computed from the (access-ordered) map. */
    private transient volatile long loadedBytes;

    private transient volatile int loadedCount;

    /** The updatable models' versions, by {@link ModelTrack#keyOf} (kept across evictions). */
    private transient Map<String, ModelTrack> tracks;
    /** The last control message per address it named: the version a model not seen yet loads. */
    private transient Map<String, ModelVersionEntry> pins;

    private transient long pinSeq;
    private transient ListState<ModelVersionEntry> versionState;
    private transient VersionLoader<IN, OUT> versions;
    private transient long nextPollAt;
    private transient Counter modelUpdates;
    /** The signature of the first model loaded here: a model that never served here is gated against it. */
    private transient ModelSignature referenceSignature;

    private transient Counter modelUpdatesRefused;

    public MultiModelOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelSelector<IN> selector,
            BatchPolicy policy,
            ModelCache cache,
            OutputTag<FailedRecord<IN>> failedTag) {
        this(spec, selector, policy, cache, failedTag, null);
    }

    /** @param updates the poll interval of watched folders and the gate, or null for the defaults */
    public MultiModelOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelSelector<IN> selector,
            BatchPolicy policy,
            ModelCache cache,
            OutputTag<FailedRecord<IN>> failedTag,
            ModelUpdates updates) {
        super(failedTag);
        this.spec = spec;
        this.selector = selector;
        this.policy = policy;
        this.cache = cache;
        this.updates = updates == null ? ModelUpdates.fromControlStream() : updates;
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        tracks = new HashMap<>();
        pins = new HashMap<>();
        // Union: after rescaling every subtask sees every entry and takes its own of a model, else the lowest's.
        versionState = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>("onnx-per-model-versions", ModelVersionEntry.class));
        if (context.isRestored()) {
            restore(versionState.get(), getRuntimeContext().getTaskInfo().getIndexOfThisSubtask());
        }
    }

    private void restore(Iterable<ModelVersionEntry> entries, int me) {
        Map<String, Integer> from = new HashMap<>();
        List<ModelVersionEntry> all = new ArrayList<>();
        for (ModelVersionEntry e : entries) {
            all.add(e);
            if (ModelVersionEntry.TRACK.equals(e.kind)) {
                Integer chosen = from.get(e.model);
                if (chosen == null || e.subtask == me || (chosen != me && e.subtask < chosen)) {
                    from.put(e.model, e.subtask);
                }
            }
        }
        all.sort(java.util.Comparator.comparingLong(e -> e.seq));
        for (ModelVersionEntry e : all) {
            boolean mine = from.containsKey(e.model) && from.get(e.model) == e.subtask;
            if (ModelVersionEntry.TRACK.equals(e.kind) && mine) {
                ModelTrack t = new ModelTrack(e.model, e.refUri, e.refVersion);
                t.served = e.uri == null ? null : new ServingModel(me, e.uri, e.sha256, e.version);
                t.found = e.found;
                t.restored = t.served != null;
                tracks.put(t.key, t);
            } else if (ModelVersionEntry.PIN.equals(e.kind)) {
                ModelVersionEntry known = pins.get(e.model);
                if (known == null || known.seq <= e.seq) {
                    pins.put(e.model, e);
                }
                pinSeq = Math.max(pinSeq, e.seq);
            }
        }
        for (ModelVersionEntry e : all) {
            if (ModelVersionEntry.PENDING.equals(e.kind)
                    && from.containsKey(e.model)
                    && from.get(e.model) == e.subtask) {
                ModelUpdate u = new ModelUpdate(e.uri, e.sha256, e.version);
                u.model = e.refUri;
                tracks.get(e.model).pending.add(u);
            }
        }
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        // Every buffer was scored before the barrier and swaps happen on the task thread: each prediction emitted
        // since a model's last swap came from the version named here.
        List<ModelVersionEntry> entries = new ArrayList<>();
        for (ServedModel<IN, OUT> model : models.values()) {
            if (model.versions != null) {
                syncTrack(model.track, model.versions);
            }
        }
        for (ModelTrack t : tracks.values()) {
            if (t.served == null && t.found == null && t.pending.isEmpty()) {
                continue;
            }
            ModelVersionEntry e = entry(ModelVersionEntry.TRACK, t.key, t);
            if (t.served != null) {
                e.uri = t.served.uri;
                e.sha256 = t.served.sha256;
                e.version = t.served.version;
            }
            e.found = t.found;
            entries.add(e);
            for (int i = 0; i < t.pending.size(); i++) {
                ModelUpdate u = t.pending.get(i);
                ModelVersionEntry p = entry(ModelVersionEntry.PENDING, t.key, t);
                p.uri = u.uri;
                p.sha256 = u.sha256;
                p.version = u.version;
                p.seq = i;
                entries.add(p);
            }
        }
        for (ModelVersionEntry pin : pins.values()) {
            ModelVersionEntry p = entry(ModelVersionEntry.PIN, pin.model, null);
            p.uri = pin.uri;
            p.sha256 = pin.sha256;
            p.version = pin.version;
            p.seq = pin.seq;
            entries.add(p);
        }
        versionState.update(entries);
    }

    private ModelVersionEntry entry(String kind, String model, ModelTrack t) {
        ModelVersionEntry e = new ModelVersionEntry();
        e.subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        e.kind = kind;
        e.model = model;
        if (t != null) {
            e.refUri = t.refUri;
            e.refVersion = t.refVersion;
        }
        return e;
    }

    @Override
    public void open() throws Exception {
        super.open();
        // Models load on a loader thread, where a process that cannot run ORT would read as one model failing
        // to load, again and again: fail the job here instead, with the reason.
        OrtRuntime.env();
        models = new LinkedHashMap<>(16, 0.75f, true);
        slot = getRuntimeContext().getTaskInfo().getAllocationIDAsString();
        subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        delayMillis = policy.maxBatchDelay().toMillis();
        loadingCheckAt = Long.MAX_VALUE;
        specModel = ModelRef.of(spec.model().uri());
        if (spec.model().sha256().isPresent()) {
            specModel = specModel.withSha256(spec.model().sha256().get());
        }
        ClassLoader userCode = getUserCodeClassloader();
        loader = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "onnx-model-loader-" + subtask);
            t.setDaemon(true);
            t.setContextClassLoader(userCode);
            return t;
        });
        metrics = onnxMetrics();
        metricsByModel = new HashMap<>();
        folderLabels = new HashMap<>();
        evictions = metrics.counter("model_evictions");
        loadFailures = metrics.counter("model_load_failures");
        modelUpdates = metrics.counter("model_updates");
        modelUpdatesRefused = metrics.counter("model_updates_refused");
        versions = new VersionLoader<>(spec, policy, updates, slot, subtask);
        nextPollAt = Long.MAX_VALUE;
        metrics.gauge("loaded_models", (Gauge<Integer>) () -> loadedCount);
        metrics.gauge("loaded_model_bytes", (Gauge<Long>) () -> loadedBytes);
    }

    @Override
    public void processElement(StreamRecord<IN> element) throws Exception {
        // records declared immutable are kept as they come, as the record buffer does
        IN record = policy.immutableRecords() ? element.getValue() : own(element.getValue());
        long timestamp = element.hasTimestamp() ? element.getTimestamp() : Long.MIN_VALUE;
        ModelRef ref;
        try {
            ref = selector.select(record);
        } catch (Exception e) {
            deadLetter(
                    record,
                    new RecordConversionException("The model selector failed on the record: " + e, e),
                    spec.model().uri(),
                    null);
            return;
        }
        ServedModel<IN, OUT> model = modelFor(ref == null ? specModel : ref);
        if (model.state == ServedModel.State.FAILED) {
            deadLetter(record, failedToLoad(model), model.ref.uri(), model.label);
            return;
        }
        if (model.state == ServedModel.State.LOADING && model.loading.isDone()) {
            finishLoad(model);
            if (model.state == ServedModel.State.FAILED) {
                deadLetter(record, failedToLoad(model), model.ref.uri(), model.label);
                return;
            }
        }
        if (model.state == ServedModel.State.LOADING) {
            model.waitingRecords.add(record);
            model.waitingTimestamps.add(timestamp);
            if (model.waitingRecords.size() >= cache.maxRecordsWaitingForLoad()) {
                awaitLoad(model); // backpressure: the bound of waiting records is reached
            }
            return;
        }
        enqueue(model, record, timestamp);
    }

    /** The model for {@code ref}: loaded, loading, or failed; starts a load (making room) when it is new. */
    private ServedModel<IN, OUT> modelFor(ModelRef ref) throws Exception {
        ServedModel<IN, OUT> model = models.get(ref);
        long now = getProcessingTimeService().getCurrentProcessingTime();
        if (model != null && (model.state != ServedModel.State.FAILED || now < model.retryAtMillis)) {
            return model;
        }
        if (model == null) {
            String label = ref.version() != null
                    ? ref.version()
                    : ref.watched() ? folderLabel(ref.uri()) : VersionLabel.ofUri(ref.uri());
            model = new ServedModel<>(ref, label);
            model.track = trackFor(ref);
        }
        makeRoom(model);
        startLoad(model);
        models.put(ref, model);
        forgetOldFailures();
        return model;
    }

    private void startLoad(ServedModel<IN, OUT> model) {
        model.state = ServedModel.State.LOADING;
        ModelTrack track = model.track;
        ServingModel served = track == null ? null : track.served;
        boolean markFolder = model.ref.watched() && track.found == null;
        // a control message that came while the model was not loaded: gated at this load (the newest one wins)
        ModelUpdate pending =
                track == null || track.pending.isEmpty() ? null : track.pending.get(track.pending.size() - 1);
        ModelSignature signature = track != null && track.signature != null ? track.signature : referenceSignature;
        ModelRef ref = model.ref;
        String label = model.label;
        model.loading = CompletableFuture.supplyAsync(
                () -> {
                    try {
                        return versions.load(ref, served, markFolder, label, pending, signature);
                    } catch (RuntimeException e) {
                        throw e;
                    } catch (Exception e) {
                        throw new CompletionException(e);
                    }
                },
                loader);
        scheduleLoadingCheck(getProcessingTimeService().getCurrentProcessingTime());
    }

    /**
     * The versions of {@code ref}'s model: kept ones (restored, or from before an eviction), a new track for a
     * watched folder or a model a control message pinned, else null (a fixed model).
     */
    private ModelTrack trackFor(ModelRef ref) {
        String key = ModelTrack.keyOf(ref);
        ModelTrack track = tracks.get(key);
        if (track != null) {
            return track;
        }
        ModelVersionEntry pin = null;
        for (ModelVersionEntry p : pins.values()) {
            if (ref.isAddressedBy(p.model) && (pin == null || p.seq > pin.seq)) {
                pin = p;
            }
        }
        if (!ref.watched() && pin == null) {
            return null;
        }
        track = ModelTrack.of(ref);
        if (pin != null) {
            // gated at the model's first load, like every version it serves
            ModelUpdate u = new ModelUpdate(pin.uri, pin.sha256, labelOf(pin.uri, pin.version));
            u.model = pin.model;
            track.pending.add(u);
        }
        tracks.put(key, track);
        return track;
    }

    private static String labelOf(String uri, String version) {
        return version == null || version.isBlank() ? ModelFolder.labelOf(uri) : version;
    }

    /**
     * A watched folder's label (its metrics' label, and its name until a version names the model): its name, or
     * where another watched folder of this operator has that name, as many of its last path segments as tell them
     * apart ({@code b/fraud} beside {@code fraud}). The same folder keeps its label for the operator's life.
     */
    private String folderLabel(String folderUri) {
        String known = folderLabels.get(folderUri);
        if (known != null) {
            return known;
        }
        String path = folderUri.replace('\\', '/');
        while (path.endsWith("/") && path.length() > 1) {
            path = path.substring(0, path.length() - 1);
        }
        String label = path.substring(path.lastIndexOf('/') + 1);
        int cut = path.lastIndexOf('/');
        while (folderLabels.containsValue(label) && cut > 0) {
            cut = path.lastIndexOf('/', cut - 1);
            label = path.substring(cut + 1);
        }
        for (int n = 2; folderLabels.containsValue(label); n++) {
            label = path + "#" + n; // the same path written two ways
        }
        folderLabels.put(folderUri, label);
        return label;
    }

    /** Evicts the least recently used models until {@code incoming} fits under {@code maxModels}. */
    private void makeRoom(ServedModel<IN, OUT> incoming) throws Exception {
        while (activeModels() >= cache.maxModels()) {
            // the least recently used loaded model; a loading one only when none is loaded (waiting for its load)
            ServedModel<IN, OUT> victim = null;
            for (ServedModel<IN, OUT> m : models.values()) {
                if (m != incoming && m.state == ServedModel.State.READY) {
                    victim = m;
                    break;
                }
            }
            for (ServedModel<IN, OUT> m : models.values()) {
                if (victim == null && m != incoming && m.state == ServedModel.State.LOADING) {
                    victim = m;
                }
            }
            if (victim == null) {
                return;
            }
            evict(victim);
        }
    }

    /** Scores what {@code model} holds (waiting for its load if needed), closes its session, forgets it. */
    private void evict(ServedModel<IN, OUT> model) throws Exception {
        if (model.state == ServedModel.State.LOADING) {
            awaitLoad(model);
        }
        if (model.state == ServedModel.State.READY) {
            flush(model); // may find the session broken: then it is closed already
            if (model.state == ServedModel.State.READY) {
                unload(model);
            }
            evictions.inc();
            LOG.debug(
                    "Evicted model {} (maxModels {}, maxModelBytes {})",
                    model,
                    cache.maxModels(),
                    cache.maxModelBytes());
        }
        if (model.state != ServedModel.State.FAILED) {
            models.remove(model.ref); // a failed one stays, with its backoff (it holds no session)
        }
    }

    /** Closes a loaded model's session (its buffer is empty) and the version it was loading, if any. */
    private void unload(ServedModel<IN, OUT> model) {
        if (model.versions != null) {
            // its control messages stay pending, its folder's version unhandled: both are taken up at the next load
            syncTrack(model.track, model.versions);
            model.versions.close(); // a version loading now is closed when its load ends
            model.versions = null;
        }
        loadedBytes -= model.bytes;
        loadedCount--;
        model.runner.close();
        model.runner = null;
        model.buffer = null;
    }

    /**
     * {@code model} failed (its load, or its session broke): its records go to the dead letters until a retry
     * after the backoff, doubling up to 10x.
     */
    private void markFailed(ServedModel<IN, OUT> model, Exception cause, String what) {
        if (model.state == ServedModel.State.READY) {
            unload(model);
        }
        model.state = ServedModel.State.FAILED;
        model.failure = cause;
        model.failedWhat = what;
        model.failuresInRow++;
        long now = getProcessingTimeService().getCurrentProcessingTime();
        long backoff = cache.retryBackoff().toMillis() << Math.min(model.failuresInRow - 1, 20);
        model.retryAtMillis = now + Math.min(backoff, 10 * cache.retryBackoff().toMillis());
        loadFailures.inc();
        LOG.warn(
                "Model {} {} ({} in a row); its records go to the dead letters until a retry in {} ms: {}",
                model,
                what,
                model.failuresInRow,
                model.retryAtMillis - now,
                cause.getMessage());
    }

    /** Blocks until {@code model} has loaded (or failed), then takes it over. */
    private void awaitLoad(ServedModel<IN, OUT> model) throws Exception {
        try {
            model.loading.get();
        } catch (ExecutionException e) {
            // finishLoad records the failure
        }
        finishLoad(model);
    }

    /** On the task thread, once the load of {@code model} is done: ready (its waiting records buffered), or failed. */
    private void finishLoad(ServedModel<IN, OUT> model) throws Exception {
        InferenceRunner<IN, OUT> runner;
        ModelTrack.Loaded<IN, OUT> loaded;
        try {
            loaded = model.loading.join();
            runner = loaded.runner;
        } catch (CompletionException | java.util.concurrent.CancellationException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            markFailed(
                    model,
                    cause instanceof Exception ? (Exception) cause : new RuntimeException(cause),
                    "failed to load");
            List<Object> waiting = new ArrayList<>(model.waitingRecords);
            model.waitingRecords.clear();
            model.waitingTimestamps.clear();
            for (Object r : waiting) {
                @SuppressWarnings("unchecked")
                IN record = (IN) r;
                deadLetter(record, failedToLoad(model), model.ref.uri(), model.label);
            }
            return;
        }
        model.label = loaded.label;
        if (referenceSignature == null) {
            referenceSignature = runner.signature();
        }
        ModelTrack track = model.track;
        if (track != null) {
            track.served =
                    new ServingModel(subtask, loaded.uri, runner.session().modelSha256(), loaded.label);
            track.signature = runner.signature();
            if (loaded.found != null) {
                track.found = loaded.found;
            }
            if (loaded.control != null) {
                int applied = track.pending.indexOf(loaded.control);
                track.pending.subList(0, applied + 1).clear(); // it and the messages before it (newest wins)
            }
            if (loaded.fallback != null) {
                track.restored = false; // not the version the checkpoint names
                reportLoad(model, loaded.fallback);
            }
            if (loaded.report != null) {
                reportLoad(model, loaded.report);
            }
            boolean promoted = loaded.report != null && loaded.report.outcome == ModelUpdateReport.Outcome.PROMOTED;
            if (track.restored && promoted) {
                track.restored = false;
            }
            if (track.restored) {
                track.restored = false;
                ModelUpdateReport report = report(ModelUpdateReport.Outcome.RESTORED, model, track.served);
                LOG.info("Model {} serves version {} again, as the checkpoint named it", model.ref, track.served);
                output.collect(ModelUpdateReport.TAG, new StreamRecord<>(report));
            }
            if (model.ref.watched() && nextPollAt == Long.MAX_VALUE) {
                nextPollAt = getProcessingTimeService().getCurrentProcessingTime()
                        + updates.pollInterval().toMillis();
                getProcessingTimeService().registerTimer(nextPollAt, this);
            }
        }
        // Metrics are never removed and cost ~4 KB a label (the histograms): past the cap, labels share "other".
        String metricsLabel =
                metricsByModel.containsKey(model.metricsLabel) || metricsByModel.size() < MODELS_WITH_METRICS
                        ? model.metricsLabel
                        : OTHER_MODELS;
        if (!metricsLabel.equals(model.metricsLabel) && !metricsByModel.containsKey(OTHER_MODELS)) {
            LOG.info(
                    "{} models have metrics of their own; {} and the models after it count under model={}",
                    MODELS_WITH_METRICS,
                    model,
                    OTHER_MODELS);
        }
        BatchMetrics modelMetrics = metricsByModel.computeIfAbsent(
                metricsLabel, l -> new BatchMetrics(modelGroup(l), MODEL_HISTOGRAM_WINDOW));
        model.ready(runner, newBuffer(runner, capacityOf(runner, policy), policy, modelMetrics));
        loadedBytes += model.bytes;
        loadedCount++;
        output.collect(FallbackReport.TAG, new StreamRecord<>(runner.fallbackReport()));
        evictOverBytes(model);
        List<Object> waiting = new ArrayList<>(model.waitingRecords);
        List<Long> timestamps = new ArrayList<>(model.waitingTimestamps);
        model.waitingRecords.clear();
        model.waitingTimestamps.clear();
        for (int i = 0; i < waiting.size(); i++) {
            @SuppressWarnings("unchecked")
            IN record = (IN) waiting.get(i);
            if (model.state == ServedModel.State.READY) {
                enqueue(model, record, timestamps.get(i));
            } else { // a batch of the waiting records found the session broken
                deadLetter(record, failedToLoad(model), model.ref.uri(), model.label);
            }
        }
        startVersions(model);
    }

    /**
     * Gives a loaded updatable model its {@link ModelVersions} (on the operator's loader thread, with its counters):
     * from now on it loads, gates and hands over the model's updates, starting with the control messages its track
     * holds (in order), and keeps the version served, the folder's version handled and the messages pending until
     * the model unloads ({@link #syncTrack}).
     */
    private void startVersions(ServedModel<IN, OUT> model) {
        ModelTrack track = model.track;
        if (track == null || model.state != ServedModel.State.READY || model.versions != null) {
            return;
        }
        ModelRef ref = model.ref;
        ModelVersions<IN, OUT> v = ModelVersions.ofTrack(
                versions.specOf(ref, ModelSource.of(ref.uri())), // its file, or its folder (named in logs)
                updates,
                ref.watched() ? ref.uri() : null,
                policy,
                slot,
                subtask,
                loader,
                modelUpdates,
                modelUpdatesRefused);
        v.startFrom(model.runner, model.label, track.found);
        model.versions = v;
        for (ModelUpdate update : track.pending) {
            v.offer(update); // gated against what serves when the messages before it are applied
        }
        track.pending.clear(); // the versions keep them until applied
        if (v.busy()) {
            scheduleLoadingCheck(getProcessingTimeService().getCurrentProcessingTime());
        }
    }

    /** What a loaded model's versions know goes back to its track: for operator state, and when it unloads. */
    private static void syncTrack(ModelTrack track, ModelVersions<?, ?> versions) {
        track.served = versions.serving();
        track.found = versions.lastFound();
        track.pending.clear();
        track.pending.addAll(versions.pendingControl());
    }

    /**
     * Over the byte bound (a model loaded, or swapped to a bigger version): the least recently used other models go,
     * never {@code keep}.
     */
    private void evictOverBytes(ServedModel<IN, OUT> keep) throws Exception {
        while (loadedBytes > cache.maxModelBytes()) {
            ServedModel<IN, OUT> victim = null;
            for (ServedModel<IN, OUT> m : models.values()) {
                if (m != keep && m.state == ServedModel.State.READY) {
                    victim = m;
                    break;
                }
            }
            if (victim == null) {
                break;
            }
            evict(victim);
        }
    }

    /** Reports the outcome of a control message gated at {@code model}'s load. */
    private void reportLoad(ServedModel<IN, OUT> model, ModelUpdateReport report) {
        if (report.outcome == ModelUpdateReport.Outcome.PROMOTED) {
            modelUpdates.inc();
            LOG.info(
                    "Model {} loaded version {} ({}){}",
                    model.ref,
                    report.version,
                    report.uri,
                    report.reason == null ? ", as a control message named it" : ": " + report.reason);
        } else if (report.outcome == ModelUpdateReport.Outcome.REFUSED) {
            modelUpdatesRefused.inc();
            LOG.warn(
                    "Model update {} ({}) of model {} refused at its load; version {} serves: {}",
                    report.version,
                    report.uri,
                    model.ref,
                    model.track.served.version,
                    report.reason);
        }
        report.model = model.ref.uri();
        report.servingVersion = model.track.served.version;
        report.timestampMillis = getProcessingTimeService().getCurrentProcessingTime();
        output.collect(ModelUpdateReport.TAG, new StreamRecord<>(report));
    }

    private MetricGroup modelGroup(String label) {
        return metrics.addGroup("model", label);
    }

    private Exception failedToLoad(ServedModel<IN, OUT> model) {
        return new RecordConversionException(
                "Model " + model + " " + model.failedWhat + " (" + model.failuresInRow
                        + " in a row, next try in at most "
                        + Math.max(
                                0,
                                model.retryAtMillis - getProcessingTimeService().getCurrentProcessingTime())
                        + " ms): " + model.failure.getMessage(),
                model.failure);
    }

    /** Encodes {@code record} into {@code model}'s buffer; scores the buffer when a trigger fires. */
    private void enqueue(ServedModel<IN, OUT> model, IN record, long timestamp) throws Exception {
        RecordBuffer<IN, OUT> buffer = model.buffer;
        boolean buffered;
        try {
            buffered = buffer.add(record, timestamp != Long.MIN_VALUE, timestamp, () -> {
                flush(model);
                return model.state == ServedModel.State.READY; // else that batch found the session broken
            });
        } catch (RecordConversionException e) {
            deadLetter(record, e, buffer.runner());
            return;
        }
        if (!buffered) {
            deadLetter(record, failedToLoad(model), model.ref.uri(), model.label);
            return;
        }
        if (buffer.due()) {
            flush(model);
        }
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        boolean pollDue = time >= nextPollAt;
        if (pollDue) {
            nextPollAt = Long.MAX_VALUE; // armed again below while a watched folder's model is loaded
        }
        boolean loading = false;
        for (ServedModel<IN, OUT> model : new ArrayList<>(models.values())) {
            if (models.get(model.ref) != model) {
                continue; // evicted by a model handled before it
            }
            if (model.state == ServedModel.State.LOADING) {
                if (model.loading.isDone()) {
                    finishLoad(model);
                } else {
                    loading = true;
                }
            }
            if (model.state == ServedModel.State.READY && model.buffer.expired(time)) {
                flush(model);
            }
            if (model.state == ServedModel.State.READY && model.versions != null) {
                applyUpdates(model, time);
            }
        }
        for (ServedModel<IN, OUT> model : new ArrayList<>(models.values())) {
            if (model.state != ServedModel.State.READY) {
                continue;
            }
            if (model.versions != null) {
                if (pollDue) {
                    model.versions.poll(); // a model without a watched folder has nothing to poll
                }
                loading |= model.versions.busy();
            }
            if (pollDue && model.ref.watched() && nextPollAt == Long.MAX_VALUE) {
                nextPollAt = time + updates.pollInterval().toMillis();
                getProcessingTimeService().registerTimer(nextPollAt, this);
            }
        }
        if (time >= loadingCheckAt) {
            loadingCheckAt = Long.MAX_VALUE;
        }
        if (loading) {
            scheduleLoadingCheck(time);
        }
    }

    private void scheduleLoadingCheck(long now) {
        if (loadingCheckAt == Long.MAX_VALUE || loadingCheckAt <= now) {
            loadingCheckAt = now + LOADING_CHECK_MILLIS;
            getProcessingTimeService().registerTimer(loadingCheckAt, this);
        }
    }

    /**
     * Takes the finished updates of {@code model} over, between its batches, in order: a promoted version serves once
     * the buffer is scored by the version it was buffered for (its previous session closes). Reports each outcome.
     */
    private void applyUpdates(ServedModel<IN, OUT> model, long now) throws Exception {
        ModelVersions<IN, OUT> v = model.versions;
        List<ModelVersions.Step<IN, OUT>> steps = v.takeReady();
        for (int i = 0; i < steps.size(); i++) {
            ModelVersions.Step<IN, OUT> step = steps.get(i);
            try {
                if (step.report.outcome == ModelUpdateReport.Outcome.PROMOTED) {
                    flush(model); // by the version it was buffered for
                    if (model.state != ServedModel.State.READY) {
                        // its session broke in that last batch: the versions neither serve nor are reported now;
                        // their control messages stay pending and the folder's version unhandled, both taken up at
                        // the model's next load
                        v.putBack(steps.subList(i, steps.size()));
                        syncTrack(model.track, v);
                        return;
                    }
                }
                applyStep(model, step, now);
            } catch (Exception | Error e) {
                // the task fails: the versions loaded and not serving are closed with it (close() no longer sees them)
                for (ModelVersions.Step<IN, OUT> untaken : steps.subList(i, steps.size())) {
                    if (untaken.runner != null && untaken.runner != model.runner) {
                        untaken.runner.close();
                    }
                }
                throw e;
            }
        }
    }

    private void applyStep(ServedModel<IN, OUT> model, ModelVersions.Step<IN, OUT> step, long now) throws Exception {
        ModelVersions<IN, OUT> v = model.versions;
        ModelUpdateReport report = step.report;
        InferenceRunner<IN, OUT> next = v.apply(step, model.runner, () -> {}); // the buffer is empty (scored above)
        if (next != model.runner) {
            model.track.signature = next.signature();
            model.buffer.serve(next, capacityOf(next, policy));
            model.runner = next;
            long bytes = next.session().residentBytes();
            loadedBytes += bytes - model.bytes;
            model.bytes = bytes;
            output.collect(FallbackReport.TAG, new StreamRecord<>(next.fallbackReport()));
            evictOverBytes(model); // a bigger version may pass the byte bound
        }
        model.track.served = v.serving();
        model.label = v.serving().version;
        report.model = model.ref.uri();
        report.timestampMillis = now;
        output.collect(ModelUpdateReport.TAG, new StreamRecord<>(report));
    }

    /**
     * A control message for the model it names ({@link ModelUpdate#model}): a loaded model loads, gates and swaps it
     * in after the messages before it; a model not loaded here (not seen yet, evicted, failed) loads, gates and
     * serves the newest such message at its next load, against the signature it served last here (else the
     * first loaded model's, else the spec's model's: the models of one operator share its encoder and decoder).
     */
    public void offerUpdate(ModelUpdate update) throws Exception {
        long now = getProcessingTimeService().getCurrentProcessingTime();
        if (update == null
                || update.model == null
                || update.model.isBlank()
                || update.uri == null
                || update.uri.isBlank()) {
            ModelUpdateReport report = ModelUpdateReport.of(
                    ModelUpdateReport.Outcome.REFUSED,
                    update == null ? null : update.uri,
                    update == null ? null : update.version,
                    null,
                    update == null || update.uri == null || update.uri.isBlank()
                            ? "The update names no model URI"
                            : "With many models per operator an update names the model it is for"
                                    + " (ModelUpdate.forModel: its ModelRef's URI or version label)",
                    subtask);
            report.timestampMillis = now;
            modelUpdatesRefused.inc();
            LOG.warn("Model update {} refused: {}", update, report.reason);
            output.collect(ModelUpdateReport.TAG, new StreamRecord<>(report));
            return;
        }
        String sha = update.sha256 == null || update.sha256.isBlank() ? null : update.sha256;
        ModelVersionEntry pin = new ModelVersionEntry();
        pin.kind = ModelVersionEntry.PIN;
        pin.model = update.model;
        pin.uri = update.uri;
        pin.sha256 = sha;
        pin.version = update.version;
        pin.seq = ++pinSeq;
        pins.put(update.model, pin);
        for (ServedModel<IN, OUT> m : models.values()) {
            if (m.track == null && m.ref.isAddressedBy(update.model)) {
                m.track = ModelTrack.of(m.ref);
                tracks.put(m.track.key, m.track);
                if (m.state == ServedModel.State.READY) {
                    m.track.signature = m.runner.signature();
                    m.track.served = new ServingModel(
                            subtask,
                            m.runner.spec().model().uri(),
                            m.runner.session().modelSha256(),
                            m.label);
                    startVersions(m);
                }
            }
        }
        for (ModelTrack track : tracks.values()) {
            if (!track.addressedBy(update.model)) {
                continue;
            }
            ServedModel<IN, OUT> model = null;
            for (ServedModel<IN, OUT> m : models.values()) {
                if (m.track == track) {
                    model = m;
                }
            }
            if (model != null && model.versions != null) {
                model.versions.offer(update); // gated against what serves when the messages before it are applied
                scheduleLoadingCheck(now);
            } else if (model != null && model.state != ServedModel.State.FAILED) {
                track.pending.add(update); // loading: offered in order once it has loaded
            } else {
                // not loaded here: its next load gates this version against the signature the model served (a
                // failed model tries it at its next record); the newest message wins
                track.pending.clear();
                track.pending.add(update);
                if (model != null) {
                    model.retryAtMillis = now;
                }
            }
        }
    }

    private ModelUpdateReport report(
            ModelUpdateReport.Outcome outcome, ServedModel<IN, OUT> model, ServingModel version) {
        ModelUpdateReport r =
                ModelUpdateReport.of(outcome, version.uri, version.version, version.sha256, null, subtask);
        r.model = model.ref.uri();
        r.servingVersion = version.version;
        r.timestampMillis = getProcessingTimeService().getCurrentProcessingTime();
        return r;
    }

    /** For tests: waits until the loader thread has done everything handed to it so far. */
    @VisibleForTesting
    public void awaitLoader(java.time.Duration timeout) throws Exception {
        loader.submit(() -> {}).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The version label {@code ref}'s model serves or loads next, or null (for tests). */
    @VisibleForTesting
    public String servedVersion(ModelRef ref) {
        ModelTrack track = tracks.get(ModelTrack.keyOf(ref));
        return track == null || track.served == null ? null : track.served.version;
    }

    /** Versions promoted so far (the {@code model_updates} counter; for tests). */
    @VisibleForTesting
    public long updatesPromoted() {
        return modelUpdates.getCount();
    }

    /** Versions refused so far (the {@code model_updates_refused} counter; for tests). */
    @VisibleForTesting
    public long updatesRefused() {
        return modelUpdatesRefused.getCount();
    }

    /** Scores every model's buffer, waiting for loads under way: nothing buffered may pass a barrier. */
    @Override
    protected void flush() throws Exception {
        if (models == null) {
            return;
        }
        for (ServedModel<IN, OUT> model : new ArrayList<>(models.values())) {
            if (models.get(model.ref) != model) {
                continue;
            }
            if (model.state == ServedModel.State.LOADING) {
                awaitLoad(model);
            }
            if (model.state == ServedModel.State.READY) {
                flush(model);
            }
        }
    }

    /** Scores {@code model}'s buffer and emits it in its input order. */
    private void flush(ServedModel<IN, OUT> model) throws Exception {
        RecordBuffer<IN, OUT> buffer = model.buffer;
        int count = buffer.take();
        if (count == 0) {
            return;
        }
        SystemicFailureException broken = null;
        try {
            buffer.score(count, reports);
        } catch (SystemicFailureException e) {
            // This model's session is broken: its records go to the dead letters, the other models go on.
            broken = e;
            buffer.failUnscored(count, e);
        }
        buffer.complete(count, emitterFor(model.runner));
        if (broken != null) {
            // This model's session is broken: closed now, loaded again by a record after the backoff.
            markFailed(model, broken, "is broken");
        }
    }

    private int activeModels() {
        int n = 0;
        for (ServedModel<IN, OUT> m : models.values()) {
            if (m.state != ServedModel.State.FAILED) {
                n++;
            }
        }
        return n;
    }

    /** Models with an open session now. */
    public int loadedModels() {
        return loadedCount;
    }

    /** The runner of {@code ref} while it is loaded, else null (for tests). */
    public InferenceRunner<IN, OUT> runner(ModelRef ref) {
        // not models.get: the map is access-ordered, and a test's look must not change which model is evicted
        for (Map.Entry<ModelRef, ServedModel<IN, OUT>> e : models.entrySet()) {
            if (e.getKey().equals(ref)) {
                return e.getValue().runner;
            }
        }
        return null;
    }

    /** The batch metrics of the models labelled {@code label}, null before one loaded. */
    @VisibleForTesting
    public BatchMetrics batchMetrics(String label) {
        return metricsByModel.get(label);
    }

    /** Models evicted so far (for tests). */
    public long evictions() {
        return evictions.getCount();
    }

    private void forgetOldFailures() {
        int failed = models.size() - activeModels();
        Iterator<ServedModel<IN, OUT>> it = models.values().iterator();
        while (failed > FAILED_MODELS_KEPT && it.hasNext()) {
            if (it.next().state == ServedModel.State.FAILED) {
                it.remove();
                failed--;
            }
        }
    }

    @Override
    public void close() throws Exception {
        try {
            if (loader != null) {
                loader.shutdownNow();
                try {
                    if (!loader.awaitTermination(60, TimeUnit.SECONDS)) {
                        LOG.warn("A model was still loading 60 s after close; its session closes when the load ends");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt(); // cancelling: close what is loaded, below, all the same
                }
            }
        } finally {
            try {
                if (models != null) {
                    for (ServedModel<IN, OUT> model : models.values()) {
                        if (model.versions != null) {
                            model.versions.close(); // closes the versions loaded and not serving
                            model.versions = null;
                        }
                        if (model.runner != null) {
                            model.runner.close();
                            model.runner = null;
                        } else if (model.loading != null) {
                            // now if it has loaded, else on the loader thread when the load ends
                            model.loading.whenComplete((loaded, failure) -> {
                                if (loaded != null) {
                                    loaded.runner.close();
                                }
                            });
                        }
                    }
                    models.clear();
                }
            } finally {
                super.close();
            }
        }
    }
}
