package io.flinkonnx.flink.models;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.model.VersionLabel;
import io.flinkonnx.providers.ProviderChain;
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
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
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
 */
@Internal
public final class MultiModelOperator<IN, OUT> extends BufferedScoringOperator<IN, OUT> {
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

    private transient Counter evictions;
    private transient Counter loadFailures;
    /** Read by the metrics reporter's thread: kept here rather than computed from the (access-ordered) map. */
    private transient volatile long loadedBytes;

    private transient volatile int loadedCount;

    public MultiModelOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelSelector<IN> selector,
            BatchPolicy policy,
            ModelCache cache,
            OutputTag<FailedRecord<IN>> failedTag) {
        super(failedTag);
        this.spec = spec;
        this.selector = selector;
        this.policy = policy;
        this.cache = cache;
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
        evictions = metrics.counter("model_evictions");
        loadFailures = metrics.counter("model_load_failures");
        metrics.gauge("loaded_models", (Gauge<Integer>) () -> loadedCount);
        metrics.gauge("loaded_model_bytes", (Gauge<Long>) () -> loadedBytes);
    }

    @Override
    public void processElement(StreamRecord<IN> element) throws Exception {
        IN record = own(element.getValue());
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
            String label = ref.version() != null ? ref.version() : VersionLabel.ofUri(ref.uri());
            model = new ServedModel<>(ref, label);
        }
        makeRoom(model);
        startLoad(model);
        models.put(ref, model);
        forgetOldFailures();
        return model;
    }

    private void startLoad(ServedModel<IN, OUT> model) {
        model.state = ServedModel.State.LOADING;
        OnnxInferenceSpec<IN, OUT> modelSpec = spec.withModel(model.ref.source());
        if (model.ref.providers() != null) {
            modelSpec = modelSpec.withProviders(ProviderChain.parse(model.ref.providers()));
        }
        OnnxInferenceSpec<IN, OUT> loadSpec = modelSpec;
        model.loading = CompletableFuture.supplyAsync(
                () -> {
                    InferenceRunner<IN, OUT> runner = new InferenceRunner<>(loadSpec);
                    try {
                        runner.open(slot, subtask, null, policy.maxBatchSize(), policy);
                        runner.version(model.label);
                        return runner;
                    } catch (Exception | Error e) {
                        runner.close();
                        throw e instanceof RuntimeException ? (RuntimeException) e : new CompletionException(e);
                    }
                },
                loader);
        scheduleLoadingCheck(getProcessingTimeService().getCurrentProcessingTime());
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

    /** Closes a loaded model's session (its buffer is empty). */
    private void unload(ServedModel<IN, OUT> model) {
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
        try {
            runner = model.loading.join();
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
        // Metrics are never removed and cost ~4 KB a label (the histograms): past the cap, labels share "other".
        String metricsLabel = metricsByModel.containsKey(model.label) || metricsByModel.size() < MODELS_WITH_METRICS
                ? model.label
                : OTHER_MODELS;
        if (!metricsLabel.equals(model.label) && !metricsByModel.containsKey(OTHER_MODELS)) {
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
        // over the byte bound: the least recently used others go (never the model just loaded)
        while (loadedBytes > cache.maxModelBytes()) {
            ServedModel<IN, OUT> victim = null;
            for (ServedModel<IN, OUT> m : models.values()) {
                if (m != model && m.state == ServedModel.State.READY) {
                    victim = m;
                    break;
                }
            }
            if (victim == null) {
                break;
            }
            evict(victim);
        }
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
                        if (model.runner != null) {
                            model.runner.close();
                            model.runner = null;
                        } else if (model.loading != null) {
                            // now if it has loaded, else on the loader thread when the load ends
                            model.loading.whenComplete((runner, failure) -> {
                                if (runner != null) {
                                    runner.close();
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
