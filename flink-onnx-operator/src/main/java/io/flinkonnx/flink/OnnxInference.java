package io.flinkonnx.flink;

import io.flinkonnx.flink.batching.BatchingInferenceOperator;
import io.flinkonnx.flink.batching.ControlledInferenceOperator;
import io.flinkonnx.flink.models.ControlledMultiModelOperator;
import io.flinkonnx.flink.models.MultiModelOperator;
import io.flinkonnx.flink.stateful.StatefulInferenceOperator;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.util.Preconditions;

/**
 * The simplest way to score a stream: {@code float[]} features in, the model's {@code float[]} output
 * out, for a model with one FLOAT input and one FLOAT output.
 *
 * <pre>{@code
 * DataStream<float[]> predictions = features.map(new OnnxInference("model.onnx"));
 * }</pre>
 *
 * <p>One record is one row of the batch axis. A flat {@code float[]} is reshaped to the model's
 * per-record shape when its dims are fixed (a 3x224x224 image is given as 150528 floats); the output row
 * comes back flat. The model is loaded once per task slot, from a path, {@code classpath:} resource or
 * any Flink file system URI; {@link #withProviders} picks the execution providers.
 *
 * <p>For other types, several inputs or outputs, or custom result types, use {@link #builder(String)}.
 */
@PublicEvolving
public class OnnxInference extends OnnxInferenceFunction<float[], float[]> {
    private static final long serialVersionUID = 1L;

    /**
     * Scores with the model at {@code modelUri}, on CPU. The model must have one FLOAT input and one FLOAT
     * output; that is checked when the function opens, where an {@link IllegalArgumentException} names the
     * inputs and outputs it has.
     *
     * @param modelUri a path, {@code classpath:} resource or any Flink file system URI, not null or blank
     * @throws IllegalArgumentException when {@code modelUri} is blank
     * @throws NullPointerException when {@code modelUri} is null
     */
    public OnnxInference(String modelUri) {
        this(ModelSource.of(modelUri));
    }

    /**
     * Scores with {@code model} (which may carry a sha256 pin), on CPU. The model must have one FLOAT input and
     * one FLOAT output, as for {@link #OnnxInference(String)}.
     *
     * @param model the model's source, with its pin if any, not null
     * @throws NullPointerException when {@code model} is null
     */
    public OnnxInference(ModelSource model) {
        this(simpleSpec(model, ProviderChain.cpu(), SessionSettings.defaults()));
    }

    private OnnxInference(OnnxInferenceSpec<float[], float[]> spec) {
        super(spec);
    }

    /**
     * This function on another EP chain, e.g. {@code "cuda(device_id=0) > cpu"}.
     *
     * @param chain the chain in {@link ProviderChain#parse} syntax, not null
     * @return a new function; this one is unchanged
     * @throws IllegalArgumentException when {@code chain} names an unknown EP or option
     * @throws NullPointerException when {@code chain} is null
     */
    public OnnxInference withProviders(String chain) {
        return new OnnxInference(spec().withProviders(ProviderChain.parse(chain)));
    }

    /**
     * This function with other session settings.
     *
     * @param settings the session settings to use instead, not null
     * @return a new function; this one is unchanged
     * @throws NullPointerException when {@code settings} is null
     */
    public OnnxInference withSessionSettings(SessionSettings settings) {
        return new OnnxInference(spec().withSessionSettings(settings));
    }

    /**
     * Starts the spec of a typed inference over records of type {@code IN}:
     *
     * <pre>{@code
     * OnnxInferenceFunction<Txn, Scored> fn = OnnxInference.<Txn>builder("classpath:models/fraud.onnx")
     *         .encoder((txn, row) -> row.put("features", txn.features()).put("country", new String[] {txn.country()}))
     *         .decoder((txn, out) -> new Scored(txn.id(), out.floats("probability")[1]), Types.POJO(Scored.class))
     *         .buildFunction();
     * }</pre>
     *
     * @param <IN> the record type
     * @param modelUri a path, {@code classpath:} resource or any Flink file system URI, not null or blank
     * @return a new builder, its encoder and decoder still to give
     * @throws IllegalArgumentException when {@code modelUri} is blank
     * @throws NullPointerException when {@code modelUri} is null
     */
    public static <IN> OnnxInferenceSpec.Builder<IN, Void> builder(String modelUri) {
        return new OnnxInferenceSpec.Builder<>(ModelSource.of(modelUri));
    }

    /**
     * {@link #builder(String)} for a source that may carry a sha256 pin.
     *
     * @param <IN> the record type
     * @param model the model's source, with its pin if any, not null
     * @return a new builder, its encoder and decoder still to give
     * @throws NullPointerException when {@code model} is null
     */
    public static <IN> OnnxInferenceSpec.Builder<IN, Void> builder(ModelSource model) {
        return new OnnxInferenceSpec.Builder<>(model);
    }

    /**
     * Scores {@code stream} in micro-batches: records are packed along the model's batch axis and run
     * together, at most {@code policy.maxBatchSize()} at a time, a lone record waiting at most
     * {@code policy.maxBatchDelay()}. Exactly-once: the buffer is scored before every checkpoint barrier
     * and at end of input. Records that do not fit the model go to {@link FailedRecord#tag} with the
     * reason; the rest of their batch is scored.
     *
     * <pre>{@code
     * OnnxInferenceSpec<Txn, Scored> spec = OnnxInference.<Txn>builder("s3://models/fraud.onnx")
     *         .encoder((txn, row) -> row.put("features", txn.features()))
     *         .decoder((txn, out) -> new Scored(txn.id(), out.floats("score")[0]), Types.POJO(Scored.class))
     *         .build();
     * SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec,
     *         BatchPolicy.builder().maxBatchSize(64).maxBatchDelay(Duration.ofMillis(5)).build());
     * DataStream<FailedRecord<Txn>> failed = scored.getSideOutput(FailedRecord.tag(txns.getType()));
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records to score, not null
     * @param spec the inference (model, encoder, decoder, result type), not null
     * @param policy when a batch runs, not null
     * @return the predictions; failed records, fallback and drift reports as side outputs
     * @throws NullPointerException when {@code stream}, {@code spec} or {@code policy} is null
     */
    public static <IN, OUT> SingleOutputStreamOperator<OUT> batched(
            DataStream<IN> stream, OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        return stream.transform(
                "ONNX inference " + spec.model().uri(),
                spec.resultType(),
                new BatchingInferenceOperator<>(spec, policy, FailedRecord.tag(stream.getType())));
    }

    /**
     * {@link #batched(DataStream, OnnxInferenceSpec, BatchPolicy)} whose model changes without a restart: a
     * newer version in {@code updates}' watched folder is loaded and gated off the task thread and swapped
     * in between batches (see {@link ModelUpdates} for the layout, the gate and the guarantees). The spec's
     * model serves until then; after a restore, the version the checkpoint names. Every prediction can name
     * its version ({@link OutputRow#modelVersion()}); each update's outcome goes to
     * {@link ModelUpdateReport#TAG}.
     *
     * <pre>{@code
     * SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec, policy,
     *         ModelUpdates.watch("s3://models/fraud/", Duration.ofMinutes(1)));
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records to score, not null
     * @param spec the inference; its model serves until a newer version passes the gate, not null
     * @param policy when a batch runs, not null
     * @param updates a watched folder ({@link ModelUpdates#watch}) and the gate, not null
     * @return the predictions; failed records, fallback, drift and update reports as side outputs
     * @throws IllegalArgumentException when {@code updates} watch no folder (give a control stream instead)
     * @throws NullPointerException when {@code stream}, {@code spec}, {@code policy} or {@code updates} is null
     */
    public static <IN, OUT> SingleOutputStreamOperator<OUT> batched(
            DataStream<IN> stream, OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, ModelUpdates updates) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(updates, "updates");
        Preconditions.checkArgument(
                updates.watchedFolder() != null,
                "These updates watch no folder: give a control stream with batched(stream, controlStream, spec,"
                        + " policy, updates), or ModelUpdates.watch(folder, interval)");
        return stream.transform(
                "ONNX inference " + spec.model().uri(),
                spec.resultType(),
                new BatchingInferenceOperator<>(spec, policy, FailedRecord.tag(stream.getType()), updates));
    }

    /**
     * {@link #batched(DataStream, OnnxInferenceSpec, BatchPolicy, ModelUpdates)} taking updates from a control
     * stream too (broadcast to every subtask; in the Kafka job, the {@code model-updates} topic), and from
     * {@code updates}' watched folder if it names one. Control messages are applied in arrival order.
     *
     * <pre>{@code
     * DataStream<ModelUpdate> control = env.fromSource(updatesTopic, WatermarkStrategy.noWatermarks(), "model-updates");
     * SingleOutputStreamOperator<Scored> scored =
     *         OnnxInference.batched(txns, control, spec, policy, ModelUpdates.fromControlStream());
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records to score, not null
     * @param controlStream the updates to apply, in arrival order, broadcast to every subtask, not null
     * @param spec the inference; its model serves until a newer version passes the gate, not null
     * @param policy when a batch runs, not null
     * @param updates the gate, and a watched folder to poll as well if it names one, not null
     * @return the predictions; failed records, fallback, drift and update reports as side outputs
     * @throws NullPointerException when any argument is null
     */
    public static <IN, OUT> SingleOutputStreamOperator<OUT> batched(
            DataStream<IN> stream,
            DataStream<ModelUpdate> controlStream,
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            ModelUpdates updates) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(controlStream, "controlStream");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(updates, "updates");
        return stream.connect(controlStream.broadcast())
                .transform(
                        "ONNX inference " + spec.model().uri(),
                        spec.resultType(),
                        new ControlledInferenceOperator<>(spec, policy, FailedRecord.tag(stream.getType()), updates));
    }

    /**
     * Scores each record with the model {@code selector} names for it (a model per tenant, per country, a
     * champion and a challenger): one operator, a buffer and batches per model ({@code policy}'s triggers for
     * each), at most {@code cache.maxModels()} sessions and {@code cache.maxModelBytes()} per subtask (least
     * recently used evicted), models loaded off the task thread. The models share the spec's encoder,
     * decoder, session settings and (unless a {@link ModelRef} names its own) EP chain, so they must share a
     * signature; a record whose selector returns null goes to the spec's model. Every prediction can name its
     * model ({@link OutputRow#modelUri()}, {@link OutputRow#modelVersion()}).
     *
     * <p>Exactly-once as {@link #batched(DataStream, OnnxInferenceSpec, BatchPolicy)}: every model's buffer is
     * scored before a checkpoint barrier. Order is kept per model, not across models. A model that fails to
     * load or run sends its own records to {@link FailedRecord#tag} (the reason names it) and is retried
     * after a backoff; the other models go on.
     *
     * <pre>{@code
     * SingleOutputStreamOperator<Scored> scored = OnnxInference.batchedPerModel(txns,
     *         ModelSelector.uriTemplate(txn -> txn.country, "s3://models/fraud-{key}.onnx"),
     *         spec, BatchPolicy.builder().maxBatchSize(64).build(),
     *         ModelCache.builder().maxModels(16).build());
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records to score, not null
     * @param selector names each record's model (null for the spec's model), not null
     * @param spec the inference the models share; its model scores the records the selector names none for, not
     *     null
     * @param policy when each model's batch runs, not null
     * @param cache how many models and model bytes a subtask keeps loaded, and the retry of a failing model, not
     *     null
     * @return the predictions; failed records, fallback and drift reports as side outputs
     * @throws NullPointerException when any argument is null
     */
    public static <IN, OUT> SingleOutputStreamOperator<OUT> batchedPerModel(
            DataStream<IN> stream,
            ModelSelector<IN> selector,
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            ModelCache cache) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(selector, "selector");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(cache, "cache");
        return stream.transform(
                "ONNX inference per model",
                spec.resultType(),
                new MultiModelOperator<>(spec, selector, policy, cache, FailedRecord.tag(stream.getType())));
    }

    /**
     * {@link #batchedPerModel(DataStream, ModelSelector, OnnxInferenceSpec, BatchPolicy, ModelCache)} whose models
     * change without a restart: a {@link ModelRef#watch watched folder} serves its newest version, and the folders of
     * the models loaded are polled every {@code updates.pollInterval()} (set with {@link
     * ModelUpdates.Builder#pollInterval}); a newer version is loaded and gated off the task thread against the version
     * that model serves ({@link ModelUpdates}: signature, golden vectors) and swapped in between that model's batches,
     * the other models scoring on. Every prediction names its model and version ({@link OutputRow#modelUri()},
     * {@link OutputRow#modelVersion()}); each update's outcome goes to {@link ModelUpdateReport#TAG}, naming the
     * model ({@link ModelUpdateReport#model}). The version each watched model serves is operator state: after a
     * failover or a restart from a savepoint a model serves exactly the version the checkpoint names, and a
     * model's newer versions come again from its folder.
     *
     * <pre>{@code
     * SingleOutputStreamOperator<Scored> scored = OnnxInference.batchedPerModel(txns,
     *         ModelSelector.byKey(txn -> txn.country, Map.of(
     *                 "DE", ModelRef.watch("s3://models/fraud-DE/"), "FR", ModelRef.watch("s3://models/fraud-FR/"))),
     *         spec, policy, ModelCache.defaults(),
     *         ModelUpdates.builder().pollInterval(Duration.ofMinutes(1)).build());
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records to score, not null
     * @param selector names each record's model, {@link ModelRef#watch watched folders} among them, not null
     * @param spec the inference the models share; its model scores the records the selector names none for, not
     *     null
     * @param policy when each model's batch runs, not null
     * @param cache how many models and model bytes a subtask keeps loaded, and the retry of a failing model, not
     *     null
     * @param updates the poll interval and the gate; its own watched folder must be unset (the refs name theirs)
     * @return the predictions; failed records, fallback, drift and update reports as side outputs
     * @throws IllegalArgumentException when {@code updates} name a watched folder of their own
     * @throws NullPointerException when any argument is null
     */
    public static <IN, OUT> SingleOutputStreamOperator<OUT> batchedPerModel(
            DataStream<IN> stream,
            ModelSelector<IN> selector,
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            ModelCache cache,
            ModelUpdates updates) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(selector, "selector");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(cache, "cache");
        checkPerModelUpdates(updates);
        return stream.transform(
                "ONNX inference per model",
                spec.resultType(),
                new MultiModelOperator<>(spec, selector, policy, cache, FailedRecord.tag(stream.getType()), updates));
    }

    /**
     * {@link #batchedPerModel(DataStream, ModelSelector, OnnxInferenceSpec, BatchPolicy, ModelCache, ModelUpdates)}
     * taking updates from a control stream too (broadcast to every subtask). Each message names the model it is for
     * ({@link ModelUpdate#forModel}: its ref's URI, a watched folder's or a model file's, or its version label) and
     * pins that model to its version until the next message for it (or, for a watched folder, a version newer than
     * what the folder held when the message was applied): a loaded model loads, gates and swaps it in, after the
     * messages before it; a model not loaded on a subtask loads that version the next time a record needs it. A
     * message naming no model is refused (a report). Messages read and not yet applied are in checkpoints.
     *
     * <pre>{@code
     * OnnxInference.batchedPerModel(txns, control, selector, spec, policy, cache, ModelUpdates.fromControlStream());
     * // control: ModelUpdate.of("s3://models/fraud-DE/v6/model.onnx", "v6").forModel("s3://models/fraud-DE/")
     * }</pre>
     *
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records to score, not null
     * @param controlStream the updates to apply, each naming its model ({@link ModelUpdate#forModel}), broadcast to
     *     every subtask, not null
     * @param selector names each record's model, not null
     * @param spec the inference the models share; its model scores the records the selector names none for, not
     *     null
     * @param policy when each model's batch runs, not null
     * @param cache how many models and model bytes a subtask keeps loaded, and the retry of a failing model, not
     *     null
     * @param updates the poll interval and the gate; its own watched folder must be unset (the refs name theirs)
     * @return the predictions; failed records, fallback, drift and update reports as side outputs
     * @throws IllegalArgumentException when {@code updates} name a watched folder of their own
     * @throws NullPointerException when any argument is null
     */
    public static <IN, OUT> SingleOutputStreamOperator<OUT> batchedPerModel(
            DataStream<IN> stream,
            DataStream<ModelUpdate> controlStream,
            ModelSelector<IN> selector,
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            ModelCache cache,
            ModelUpdates updates) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(controlStream, "controlStream");
        Preconditions.checkNotNull(selector, "selector");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(cache, "cache");
        checkPerModelUpdates(updates);
        return stream.connect(controlStream.broadcast())
                .transform(
                        "ONNX inference per model",
                        spec.resultType(),
                        new ControlledMultiModelOperator<>(
                                spec, selector, policy, cache, FailedRecord.tag(stream.getType()), updates));
    }

    private static void checkPerModelUpdates(ModelUpdates updates) {
        Preconditions.checkNotNull(updates, "updates");
        Preconditions.checkArgument(
                updates.watchedFolder() == null,
                "batchedPerModel watches the folders its ModelRefs name (ModelRef.watch(folder)): give the poll"
                        + " interval with ModelUpdates.builder().pollInterval(...), not watch(%s, ...)",
                updates.watchedFolder());
    }

    /**
     * Scores a keyed stream with a recurrent model (an RNN/GRU/LSTM, a voice-activity detector) whose
     * ONNX export takes the previous state as inputs and returns the next state as outputs. Each key's
     * state lives in Flink keyed state: checkpointed, restored after failover, redistributed on rescaling.
     * Records of different keys are scored together, their states stacked along each state's batch axis;
     * two records of one key are run one after the other, in input order. The encoder gives the record's
     * own inputs only; the operator supplies the states and constants.
     *
     * <pre>{@code
     * OnnxInferenceSpec<Event, Score> spec = OnnxInference.<Event>builder("classpath:models/gru.onnx")
     *         .encoder((e, row) -> row.put("x", e.features()))
     *         .decoder((e, out) -> new Score(e.user(), out.floats("y")), Types.POJO(Score.class))
     *         .build();
     * RecurrentState<Event> state = RecurrentState.<Event>builder()
     *         .state("h", "hn", 1)                 // h: FLOAT[1, batch, 16]
     *         .ttl(Duration.ofHours(1))
     *         .resetWhen(Event::endOfSession)
     *         .build();
     * SingleOutputStreamOperator<Score> scores = OnnxInference.stateful(
     *         events.keyBy(Event::user), spec, BatchPolicy.builder().maxBatchSize(64).build(), state);
     * }</pre>
     *
     * <p>Exactly-once: a key's state changes only when its record is scored (a dead letter leaves it as it
     * was), and the buffer is scored before every checkpoint barrier, so a checkpoint holds states
     * consistent with every emitted prediction. Records that do not fit go to {@link FailedRecord#tag}.
     *
     * @param <K> the key type
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records, keyed by what owns a state (a user, a device, a session), not null
     * @param spec the inference; its encoder gives the record's own inputs only, not null
     * @param policy when a batch runs, not null
     * @param state which inputs and outputs carry the state, its TTL and when it resets, not null
     * @return the predictions; failed records, fallback and drift reports as side outputs
     * @throws NullPointerException when {@code stream}, {@code spec}, {@code policy} or {@code state} is null
     */
    public static <K, IN, OUT> SingleOutputStreamOperator<OUT> stateful(
            KeyedStream<IN, K> stream, OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, RecurrentState<IN> state) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(state, "state");
        return stream.transform(
                "ONNX stateful inference " + spec.model().uri(),
                spec.resultType(),
                new StatefulInferenceOperator<>(spec, policy, state, FailedRecord.tag(stream.getType())));
    }

    /**
     * {@link #stateful(KeyedStream, OnnxInferenceSpec, BatchPolicy, RecurrentState)} whose model changes without a
     * restart: a newer version in {@code updates}' watched folder is loaded and gated off the task thread and swapped
     * in between batches, as in {@link #batched(DataStream, OnnxInferenceSpec, BatchPolicy, ModelUpdates)}. Every
     * key's state carries over to the new version: the gate refuses a version whose signature differs, its states'
     * names, types and shapes included (the reason goes to {@link ModelUpdateReport#TAG}), unless its states alone
     * differ and {@link ModelUpdates.Builder#resetStatesOnSignatureChange} is set: then every key's state is reset
     * at the swap and starts from the new version's initial state. The serving version is operator state, so after
     * a failover the keys' states and the version that wrote them come back together.
     *
     * <pre>{@code
     * SingleOutputStreamOperator<Score> scores = OnnxInference.stateful(
     *         events.keyBy(Event::user), spec, policy, state,
     *         ModelUpdates.watch("s3://models/vad/", Duration.ofMinutes(1)));
     * }</pre>
     *
     * @param <K> the key type
     * @param <IN> the record type
     * @param <OUT> the result type
     * @param stream the records, keyed by what owns a state, not null
     * @param spec the inference; its model serves until a newer version passes the gate, not null
     * @param policy when a batch runs, not null
     * @param state which inputs and outputs carry the state, its TTL and when it resets, not null
     * @param updates a watched folder ({@link ModelUpdates#watch}); control streams are not taken here yet
     * @return the predictions; failed records, fallback, drift and update reports as side outputs
     * @throws IllegalArgumentException when {@code updates} watch no folder
     * @throws NullPointerException when any argument is null
     */
    public static <K, IN, OUT> SingleOutputStreamOperator<OUT> stateful(
            KeyedStream<IN, K> stream,
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            RecurrentState<IN> state,
            ModelUpdates updates) {
        Preconditions.checkNotNull(stream, "stream");
        Preconditions.checkNotNull(spec, "spec");
        Preconditions.checkNotNull(policy, "policy");
        Preconditions.checkNotNull(state, "state");
        Preconditions.checkNotNull(updates, "updates");
        Preconditions.checkArgument(
                updates.watchedFolder() != null,
                "These updates watch no folder: a stateful model takes its versions from ModelUpdates.watch(folder,"
                        + " interval)");
        return stream.transform(
                "ONNX stateful inference " + spec.model().uri(),
                spec.resultType(),
                new StatefulInferenceOperator<>(spec, policy, state, FailedRecord.tag(stream.getType()), updates));
    }

    /**
     * {@link #batched(DataStream, OnnxInferenceSpec, BatchPolicy)} for {@code float[]} records and a one-input,
     * one-output FLOAT model.
     *
     * @param stream the feature rows to score, one record a row, not null
     * @param modelUri a path, {@code classpath:} resource or any Flink file system URI, not null or blank
     * @param policy when a batch runs, not null
     * @return the model's output rows, flat; failed records, fallback and drift reports as side outputs
     * @throws IllegalArgumentException when {@code modelUri} is blank
     * @throws NullPointerException when {@code stream}, {@code modelUri} or {@code policy} is null
     */
    public static SingleOutputStreamOperator<float[]> batched(
            DataStream<float[]> stream, String modelUri, BatchPolicy policy) {
        return batched(stream, new OnnxInference(modelUri).spec(), policy);
    }

    private static OnnxInferenceSpec<float[], float[]> simpleSpec(
            ModelSource model, ProviderChain providers, SessionSettings settings) {
        return new OnnxInferenceSpec.Builder<float[], Void>(model)
                .providers(providers)
                .sessionSettings(settings)
                .encoder((float[] features, InputRow row) -> row.put(features))
                .decoder(
                        (float[] features, OutputRow out) -> out.floats(),
                        PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .signatureCheck(OnnxInference::checkOneFloatInOneFloatOut)
                .build();
    }

    static void checkOneFloatInOneFloatOut(ModelSignature signature, String model) {
        if (signature.inputs().size() != 1
                || signature.outputs().size() != 1
                || signature.inputs().get(0).elementType() != ElementType.FLOAT
                || signature.outputs().get(0).elementType() != ElementType.FLOAT
                || signature.outputs().get(0).kind() != TensorSpec.Kind.TENSOR) {
            throw new IllegalArgumentException("new OnnxInference(\"" + model + "\") needs a model with one FLOAT"
                    + " input and one FLOAT output, but it has inputs " + signature.inputs() + " and outputs "
                    + signature.outputs() + ". Use OnnxInference.builder(...) with an encoder and decoder.");
        }
    }
}
