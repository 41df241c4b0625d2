package io.flinkonnx.examples.docs;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceFunction;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.sql.OnnxScoreFunction;
import io.flinkonnx.flink.text.SentenceEmbedding;
import io.flinkonnx.flink.text.TextClassifier;
import io.flinkonnx.flink.text.TextEncoder;
import io.flinkonnx.flink.text.TextLabel;
import io.flinkonnx.flink.text.Truncation;
import io.flinkonnx.providers.SessionSettings;
import java.time.Duration;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.TableEnvironment;

/**
 * The Java samples of README and {@code docs/}, compiled by the build: each sample is the region between a
 * {@code tag::name[]} and an {@code end::name[]} comment, and {@code DocSamplesTest} fails when a Java block of the
 * docs is not, character for character (indentation aside), one of these regions. The methods are never run; their
 * parameters are what a sample takes from the job around it.
 */
@SuppressWarnings("unused")
public final class DocSamples {
    private DocSamples() {}

    /** A transaction as the samples score it. */
    public static class Txn {
        public String id;
        public float[] features;
        public String merchant;
        public String country;
        public String cardId;
    }

    /** A transaction's score. */
    public static class Scored {
        public String id;
        public float probability;

        public Scored() {}

        public Scored(String id, float probability) {
            this.id = id;
            this.probability = probability;
        }
    }

    /** An event of a user's session, for a recurrent model. */
    public static class Event {
        public String user;
        public float[] features;
        public boolean endOfSession;

        public String user() {
            return user;
        }

        public float[] features() {
            return features;
        }

        public boolean endOfSession() {
            return endOfSession;
        }
    }

    /** A recurrent model's output for a user. */
    public static class Score {
        public String user;
        public float[] y;

        public Score() {}

        public Score(String user, float[] y) {
            this.user = user;
            this.y = y;
        }
    }

    /** A support ticket, for the text samples. */
    public static class Ticket {
        public String id;
        public String body;
    }

    /** A ticket's embedding. */
    public static class Embedded {
        public String id;
        public float[] embedding;

        public Embedded() {}

        public Embedded(String id, float[] embedding) {
            this.id = id;
            this.embedding = embedding;
        }
    }

    // spotless:off -- the samples keep the layout the docs print
    static void map(DataStream<float[]> features) {
        // tag::map[]
        DataStream<float[]> predictions = features.map(new OnnxInference("model.onnx"));
        // end::map[]
    }

    static void typedRecords(DataStream<Txn> transactions) {
        // tag::typed[]
        OnnxInferenceFunction<Txn, Scored> scorer = OnnxInference.<Txn>builder("s3://models/fraud.onnx")
                .providers("cuda(device_id=0) > cpu")
                .encoder((txn, row) -> row
                        .put("features", txn.features)                     // float[] for a FLOAT input
                        .put("merchant", new String[] {txn.merchant}))      // String[] for a STRING input
                .decoder((txn, out) -> new Scored(txn.id, out.floats("probability")[1]), Types.POJO(Scored.class))
                .buildFunction();
        DataStream<Scored> scored = transactions.map(scorer);
        // end::typed[]
    }

    static void batched(DataStream<Txn> txns) {
        // tag::batched[]
        OnnxInferenceSpec<Txn, Scored> spec = OnnxInference.<Txn>builder("s3://models/fraud.onnx")
                .encoder((txn, row) -> row.put("features", txn.features))
                .decoder((txn, out) -> new Scored(txn.id, out.floats("probability")[1]), Types.POJO(Scored.class))
                .build();
        SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec, BatchPolicy.builder()
                .maxBatchSize(64)                      // records per ORT run
                .maxBatchDelay(Duration.ofMillis(5))   // a lone record waits at most this long (processing time)
                .maxBufferedBytes(8 << 20)             // bound on buffered input bytes, padding included (default 256 MiB)
                .build());
        DataStream<FailedRecord<Txn>> deadLetters = scored.getSideOutput(FailedRecord.tag(txns.getType()));
        // end::batched[]
    }

    static void extensions(DataStream<Ticket> tickets) {
        // tag::extensions[]
        OnnxInferenceSpec<Ticket, Scored> spec = OnnxInference.<Ticket>builder("s3://models/ticket-triage.onnx")
                .sessionSettings(SessionSettings.builder()
                        .onnxRuntimeExtensions(true)                   // the graph's ai.onnx.contrib operators
                        .build())
                .encoder((t, row) -> row.put("text", t.body))          // one String for a tensor(string) input
                .decoder((t, out) -> new Scored(t.id, out.floats("urgency")[0]), Types.POJO(Scored.class))
                .build();
        SingleOutputStreamOperator<Scored> triaged = OnnxInference.batched(tickets, spec, BatchPolicy.defaults());
        // end::extensions[]
    }

    static void stateful(DataStream<Event> events) {
        // tag::stateful[]
        OnnxInferenceSpec<Event, Score> spec = OnnxInference.<Event>builder("classpath:models/lstm.onnx")
                .encoder((e, row) -> row.put("x", e.features()))          // the record's own inputs only
                .decoder((e, out) -> new Score(e.user(), out.floats("y")), Types.POJO(Score.class))
                .build();
        RecurrentState<Event> state = RecurrentState.<Event>builder()
                .state("h", "hn")                 // input h takes the key's state, output hn is the next one
                .state("c", "cn", 1)              // batch axis given: c is [layers, batch, hidden]
                .initial("h", new float[16])      // optional, default zeros (the state's per-key shape)
                .constant("sr", 16000L)           // a constant input without batch axis (INT64 scalar), every run
                .ttl(Duration.ofMinutes(30))      // an idle key starts again from the initial state
                .resetWhen(Event::endOfSession)   // scored with its state, then the key starts again
                .build();
        SingleOutputStreamOperator<Score> scores = OnnxInference.stateful(
                events.keyBy(Event::user), spec, BatchPolicy.builder().maxBatchSize(64).build(), state);
        // end::stateful[]
    }

    static void statefulUpdates(
            DataStream<Event> events,
            OnnxInferenceSpec<Event, Score> spec,
            BatchPolicy policy,
            RecurrentState<Event> state) {
        // tag::stateful-updates[]
        ModelUpdates updates = ModelUpdates.builder()
                .watch("s3://models/vad/", Duration.ofMinutes(1))
                .resetStatesOnSignatureChange(true)   // a version with other states serves, every key reset
                .build();
        SingleOutputStreamOperator<Score> scores =
                OnnxInference.stateful(events.keyBy(Event::user), spec, policy, state, updates);
        DataStream<ModelUpdateReport> reports = scores.getSideOutput(ModelUpdateReport.TAG);
        // end::stateful-updates[]
    }

    static void reports(SingleOutputStreamOperator<Scored> scored) {
        // tag::reports[]
        DataStream<FallbackReport> placement = scored.getSideOutput(FallbackReport.TAG);
        DataStream<DriftReport> drift = scored.getSideOutput(DriftReport.TAG);
        // end::reports[]
    }

    static void modelUpdates(
            StreamExecutionEnvironment env,
            DataStream<Txn> txns,
            OnnxInferenceSpec<Txn, Scored> spec,
            BatchPolicy policy,
            Source<ModelUpdate, ?, ?> updatesTopic) {
        // tag::model-updates[]
        // 1. a folder (any Flink file system) where versions appear: s3://models/fraud/v7/model.onnx, or fraud-7.onnx
        SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec, policy,
                ModelUpdates.watch("s3://models/fraud/", Duration.ofMinutes(1)));

        // 2. a control stream of ModelUpdate(uri, sha256, version), broadcast to every subtask
        DataStream<ModelUpdate> control = env.fromSource(updatesTopic, WatermarkStrategy.noWatermarks(), "model-updates");
        SingleOutputStreamOperator<Scored> scored2 =
                OnnxInference.batched(txns, control, spec, policy, ModelUpdates.fromControlStream());

        scored.getSideOutput(ModelUpdateReport.TAG);   // PROMOTED / REFUSED / RESTORED / ALREADY_SERVING, with the reason
        // in the decoder: out.modelVersion(), out.modelSha256(): the version that scored this record
        // end::model-updates[]
    }

    static void manyModels(DataStream<Txn> txns, OnnxInferenceSpec<Txn, Scored> spec) {
        // tag::many-models[]
        ModelSelector<Txn> perCountry = ModelSelector.uriTemplate(txn -> txn.country, "s3://models/fraud-{key}.onnx");
        ModelSelector<Txn> canary = ModelSelector.split(txn -> txn.cardId,          // 5 % of cards to the challenger
                ModelRef.of("s3://models/fraud-v7.onnx"), ModelRef.of("s3://models/fraud-v8.onnx").withVersion("v8"), 0.05);
        SingleOutputStreamOperator<Scored> scored = OnnxInference.batchedPerModel(txns, perCountry, spec,
                BatchPolicy.builder().maxBatchSize(64).maxBatchDelay(Duration.ofMillis(5)).build(),
                ModelCache.builder().maxModels(16).maxModelBytes(4L << 30).build());
        // in the decoder: out.modelUri(), out.modelVersion(): the model that scored this record
        // end::many-models[]
    }

    static void manyModelUpdates(
            DataStream<Txn> txns,
            DataStream<ModelUpdate> control,
            OnnxInferenceSpec<Txn, Scored> spec,
            BatchPolicy policy) {
        // tag::many-models-updates[]
        // each country's model is its folder's newest version, polled every minute, swapped between its batches
        ModelSelector<Txn> perCountry = ModelSelector.byKey(txn -> txn.country, Map.of(
                "DE", ModelRef.watch("s3://models/fraud-DE/"),
                "FR", ModelRef.watch("s3://models/fraud-FR/")));
        SingleOutputStreamOperator<Scored> scored = OnnxInference.batchedPerModel(txns, perCountry, spec, policy,
                ModelCache.defaults(), ModelUpdates.builder().pollInterval(Duration.ofMinutes(1)).build());

        // a control stream pins one model to a version (a rollback of DE) until the next message for it
        ModelUpdate rollback = ModelUpdate.of("s3://models/fraud-DE/v6/model.onnx", "v6").forModel("s3://models/fraud-DE/");
        SingleOutputStreamOperator<Scored> scored2 = OnnxInference.batchedPerModel(txns, control, perCountry, spec,
                policy, ModelCache.defaults(), ModelUpdates.fromControlStream());
        // end::many-models-updates[]
    }

    static void text(DataStream<Ticket> tickets) {
        // tag::text[]
        SentenceEmbedding embedding = SentenceEmbedding.mean().normalized();   // or .cls(); pooled outputs as is
        OnnxInferenceSpec<Ticket, Embedded> spec = OnnxInference.<Ticket>builder("s3://models/minilm/model.onnx")
                .encoder(TextEncoder.<Ticket>builder("s3://models/minilm/tokenizer.json", t -> t.body)
                        .maxLength(256)                        // tokens, special tokens included
                        .truncation(Truncation.TRUNCATE)       // or REFUSE: a dead letter
                        .build())
                .decoder((t, out) -> new Embedded(t.id, embedding.embed(out)), Types.POJO(Embedded.class))
                .build();
        SingleOutputStreamOperator<Embedded> embedded = OnnxInference.batched(tickets, spec, BatchPolicy.defaults());
        DataStream<FailedRecord<Ticket>> badTexts = embedded.getSideOutput(FailedRecord.tag(tickets.getType()));
        // end::text[]
    }

    static void textClassifier(DataStream<Ticket> tickets) {
        // tag::text-classifier[]
        OnnxInferenceSpec<Ticket, TextLabel> spec = OnnxInference.<Ticket>builder("s3://models/sentiment/model.onnx")
                .encoder(TextEncoder.<Ticket>builder("s3://models/sentiment/tokenizer.json", t -> t.body).build())
                .decoder(TextClassifier.fromConfig("s3://models/sentiment/config.json").decoder(),
                        Types.POJO(TextLabel.class))         // label, labelId, score (softmax)
                .build();
        // end::text-classifier[]
    }

    static void scalarFunction(TableEnvironment tEnv) {
        // tag::scalar-function[]
        tEnv.createTemporarySystemFunction("fraud", new OnnxScoreFunction("s3://models/fraud.onnx"));
        // end::scalar-function[]
    }
    // spotless:on
}
