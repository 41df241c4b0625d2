package io.flinkonnx.examples;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSource;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Kafka-to-Kafka scoring: JSON transactions ({@code {"id": "...", "features": [8 numbers]}}, key = id) are
 * scored by the batching ONNX operator; predictions (input key, partition and offset, model URI and
 * sha256, probabilities, latency since the source read the record) go to the output topic; malformed messages to the dead-letter topic
 * with their topic/partition/offset and the reason; fallback and drift reports to their topics. With
 * {@code --topic.model-updates=model-updates} one JSON message ({@code {"uri", "sha256", "version"}}) promotes a
 * new model version without a restart, and each prediction names the version that scored it. Every sink
 * is a transactional EXACTLY_ONCE {@link KafkaSink}, committed with Flink's checkpoints.
 *
 * <pre>
 * flink run flink-onnx-examples-job.jar --bootstrap.servers=kafka:9092 --model=s3://models/fraud.onnx \
 *     --model.sha256=... --providers="cuda > cpu" --batch.max-size=64 --batch.max-delay-ms=5
 * </pre>
 */
public final class KafkaScoringJob {
    static final ObjectMapper JSON = new ObjectMapper();

    private KafkaScoringJob() {}

    public static void main(String[] args) throws Exception {
        ScoringJobConfig config = ScoringJobConfig.fromArgs(args);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        build(env, config);
        env.execute("flink-onnx Kafka scoring");
    }

    /**
     * Adds the scoring pipeline to {@code env}. The model is fetched once here, on the client, to pin its
     * sha256: every TaskManager then loads exactly the bytes this job was built with.
     */
    public static void build(StreamExecutionEnvironment env, ScoringJobConfig c) {
        env.enableCheckpointing(c.getLong("checkpoint.interval-ms"), CheckpointingMode.EXACTLY_ONCE);
        env.setParallelism((int) c.getLong("parallelism"));
        ModelSource model = ModelSource.of(c.get("model"));
        if (!c.get("model.sha256").isEmpty()) {
            model = model.withSha256(c.get("model.sha256"));
        }
        String sha256;
        try (LocalModel local = model.fetch()) {
            sha256 = local.sha256();
        }
        model = model.withSha256(sha256);

        var sourceBuilder = KafkaSource.<KafkaMessage>builder()
                .setBootstrapServers(c.get("bootstrap.servers"))
                .setTopics(c.get("topic.input"))
                .setGroupId(c.get("group.id"))
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setDeserializer(new MessageDeserializer())
                .setProperty("isolation.level", "read_committed");
        if (Boolean.parseBoolean(c.get("bounded"))) {
            sourceBuilder.setBounded(OffsetsInitializer.latest());
        }
        DataStream<KafkaMessage> messages = env.fromSource(
                        sourceBuilder.build(), WatermarkStrategy.noWatermarks(), "transactions")
                .uid("transactions");

        OnnxInferenceSpec.Builder<KafkaMessage, Prediction> spec = OnnxInference.<KafkaMessage>builder(model)
                .providers(c.get("providers"))
                .encoder(new TransactionEncoder())
                .decoder(new PredictionDecoder(c.get("model"), sha256), TypeInformation.of(Prediction.class));
        if (!c.get("drift.golden-vectors").isEmpty()) {
            spec.driftAgainstGoldenVectors(
                    c.get("drift.golden-vectors"), Duration.ofMillis(c.getLong("drift.interval-ms")));
        }
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize((int) c.getLong("batch.max-size"))
                .maxBatchDelay(Duration.ofMillis(c.getLong("batch.max-delay-ms")))
                .build();
        SingleOutputStreamOperator<Prediction> predictions =
                score(env, c, messages, spec.build(), policy).name("onnx-score").uid("onnx-score");

        // Each output becomes (key, JSON) text first; the Kafka sinks then write plain strings.
        String prefix = c.get("transactional-id-prefix");
        predictions
                .map(p -> Tuple2.of(p.key, json(p)))
                .returns(KEYED_JSON)
                .name("prediction-json")
                .uid("prediction-json")
                .sinkTo(sink(c, c.get("topic.output"), prefix + "-predictions"))
                .name("predictions")
                .uid("predictions");
        predictions
                .getSideOutput(FailedRecord.tag(messages.getType()))
                .map(f -> Tuple2.of(f.record.key, deadLetterJson(f)))
                .returns(KEYED_JSON)
                .name("dead-letter-json")
                .uid("dead-letter-json")
                .sinkTo(sink(c, c.get("topic.dead-letters"), prefix + "-dead-letters"))
                .name("dead-letters")
                .uid("dead-letters");
        predictions
                .getSideOutput(FallbackReport.TAG)
                .map(r -> Tuple2.of(r.model, json(r)))
                .returns(KEYED_JSON)
                .name("fallback-json")
                .uid("fallback-json")
                .sinkTo(sink(c, c.get("topic.fallback-reports"), prefix + "-fallback"))
                .name("fallback-reports")
                .uid("fallback-reports");
        predictions
                .getSideOutput(DriftReport.TAG)
                .map(r -> Tuple2.of(r.model, json(r)))
                .returns(KEYED_JSON)
                .name("drift-json")
                .uid("drift-json")
                .sinkTo(sink(c, c.get("topic.drift-reports"), prefix + "-drift"))
                .name("drift-reports")
                .uid("drift-reports");
    }

    /**
     * The scoring operator: with a {@code topic.model-updates} and/or a {@code model.watch} folder, one whose
     * model changes without a restart (each update's outcome goes to {@code topic.model-update-reports}).
     */
    private static SingleOutputStreamOperator<Prediction> score(
            StreamExecutionEnvironment env,
            ScoringJobConfig c,
            DataStream<KafkaMessage> messages,
            OnnxInferenceSpec<KafkaMessage, Prediction> spec,
            BatchPolicy policy) {
        String updatesTopic = c.get("topic.model-updates");
        String watched = c.get("model.watch");
        String template = c.get("model.selector.uri-template");
        if (!template.isEmpty()) {
            if (!updatesTopic.isEmpty() || !watched.isEmpty()) {
                throw new IllegalArgumentException("model.selector.* picks a model per record; it cannot be combined"
                        + " with topic.model-updates or model.watch (update the models behind the template instead)");
            }
            if (c.get("model.selector.field").isEmpty()) {
                throw new IllegalArgumentException("model.selector.uri-template needs model.selector.field: the JSON"
                        + " field whose value replaces {key}");
            }
            return OnnxInference.batchedPerModel(
                    messages,
                    ModelSelector.uriTemplate(new JsonField(c.get("model.selector.field")), template),
                    spec,
                    policy,
                    ModelCache.builder()
                            .maxModels((int) c.getLong("models.max"))
                            .maxModelBytes(c.getLong("models.max-bytes"))
                            .build());
        }
        if (updatesTopic.isEmpty() && watched.isEmpty()) {
            return OnnxInference.batched(messages, spec, policy);
        }
        ModelUpdates.Builder updates = ModelUpdates.builder();
        if (!watched.isEmpty()) {
            updates.watch(watched, Duration.ofMillis(c.getLong("model.watch.interval-ms")));
        }
        SingleOutputStreamOperator<Prediction> predictions;
        if (updatesTopic.isEmpty()) {
            predictions = OnnxInference.batched(messages, spec, policy, updates.build());
        } else {
            var source = KafkaSource.<ModelUpdate>builder()
                    .setBootstrapServers(c.get("bootstrap.servers"))
                    .setTopics(updatesTopic)
                    .setGroupId(c.get("group.id") + "-model-updates")
                    .setStartingOffsets(OffsetsInitializer.earliest())
                    .setDeserializer(new ModelUpdateDeserializer())
                    .setProperty("isolation.level", "read_committed");
            if (Boolean.parseBoolean(c.get("bounded"))) {
                source.setBounded(OffsetsInitializer.latest());
            }
            DataStream<ModelUpdate> control = env.fromSource(
                            source.build(), WatermarkStrategy.noWatermarks(), "model-updates")
                    .setParallelism(1)
                    .uid("model-updates");
            predictions = OnnxInference.batched(messages, control, spec, policy, updates.build());
        }
        predictions
                .getSideOutput(ModelUpdateReport.TAG)
                .map(r -> Tuple2.of(r.version, json(r)))
                .returns(KEYED_JSON)
                .name("model-update-json")
                .uid("model-update-json")
                .sinkTo(sink(c, c.get("topic.model-update-reports"), c.get("transactional-id-prefix") + "-updates"))
                .name("model-update-reports")
                .uid("model-update-reports");
        return predictions;
    }

    /** A text field of the message's JSON value (the model selector's key); a message without it is refused. */
    static final class JsonField implements org.apache.flink.api.java.functions.KeySelector<KafkaMessage, String> {
        private static final long serialVersionUID = 1L;
        private final String field;

        JsonField(String field) {
            this.field = field;
        }

        @Override
        public String getKey(KafkaMessage message) throws Exception {
            JsonNode value = JSON.readTree(message.value).path(field);
            if (!value.isTextual()) {
                throw new IllegalArgumentException(
                        "The message has no text field '" + field + "' to choose its model by");
            }
            return value.asText();
        }
    }

    /**
     * A model-updates message: {@code {"uri": "s3://models/fraud/v8/model.onnx", "sha256": "...", "version":
     * "v8"}} (sha256 optional). A message that is not such JSON becomes an update without a URI, which the
     * operator refuses with a report: a typo in the control topic is visible, never fatal.
     */
    static final class ModelUpdateDeserializer implements KafkaRecordDeserializationSchema<ModelUpdate> {
        private static final long serialVersionUID = 1L;

        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<ModelUpdate> out) {
            String text = r.value() == null ? "" : new String(r.value(), StandardCharsets.UTF_8);
            try {
                JsonNode m = JSON.readTree(text);
                out.collect(new ModelUpdate(
                        m.path("uri").isTextual() ? m.get("uri").asText() : null,
                        m.path("sha256").isTextual() ? m.get("sha256").asText() : null,
                        m.path("version").isTextual() ? m.get("version").asText() : null));
            } catch (Exception e) {
                out.collect(new ModelUpdate(null, null, "unreadable message at offset " + r.offset()));
            }
        }

        @Override
        public TypeInformation<ModelUpdate> getProducedType() {
            return TypeInformation.of(ModelUpdate.class);
        }
    }

    static final TypeInformation<Tuple2<String, String>> KEYED_JSON = Types.TUPLE(Types.STRING, Types.STRING);

    static KafkaSink<Tuple2<String, String>> sink(ScoringJobConfig c, String topic, String transactionalIdPrefix) {
        return KafkaSink.<Tuple2<String, String>>builder()
                .setBootstrapServers(c.get("bootstrap.servers"))
                .setRecordSerializer(KafkaRecordSerializationSchema.<Tuple2<String, String>>builder()
                        .setTopic(topic)
                        .setKeySerializationSchema(new Utf8(0))
                        .setValueSerializationSchema(new Utf8(1))
                        .build())
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(transactionalIdPrefix)
                // Below the broker's default transaction.max.timeout.ms (15 minutes).
                .setProperty(
                        "transaction.timeout.ms",
                        String.valueOf(Duration.ofMinutes(10).toMillis()))
                .build();
    }

    /** Field {@code index} of a (key, value) pair as UTF-8. */
    private static final class Utf8 implements SerializationSchema<Tuple2<String, String>> {
        private static final long serialVersionUID = 1L;
        private final int index;

        Utf8(int index) {
            this.index = index;
        }

        @Override
        public byte[] serialize(Tuple2<String, String> element) {
            String s = element.getField(index);
            return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
        }
    }

    static String json(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("Cannot write " + value.getClass().getSimpleName() + " as JSON", e);
        }
    }

    static String deadLetterJson(FailedRecord<KafkaMessage> f) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("topic", f.record.topic);
        m.put("partition", f.record.partition);
        m.put("offset", f.record.offset);
        m.put("key", f.record.key);
        m.put("value", f.record.value);
        m.put("reason", f.reason);
        m.put("model", f.model);
        m.put("modelVersion", f.modelVersion);
        return json(m);
    }

    /** Wall-clock time in microseconds (source and scoring run in one task, on one clock). */
    static long nowMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000 + now.getNano() / 1_000;
    }

    /** Reads key and value as UTF-8 text, keeping topic, partition, offset and timestamp; stamps the read time. */
    static final class MessageDeserializer implements KafkaRecordDeserializationSchema<KafkaMessage> {
        private static final long serialVersionUID = 1L;

        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<KafkaMessage> out) {
            KafkaMessage m = new KafkaMessage(
                    r.topic(),
                    r.partition(),
                    r.offset(),
                    r.key() == null ? null : new String(r.key(), StandardCharsets.UTF_8),
                    r.value() == null ? null : new String(r.value(), StandardCharsets.UTF_8),
                    r.timestamp());
            m.readAtMicros = nowMicros();
            out.collect(m);
        }

        @Override
        public TypeInformation<KafkaMessage> getProducedType() {
            return TypeInformation.of(KafkaMessage.class);
        }
    }

    /**
     * {@code {"id": "...", "features": [...]}} to the model's {@code features} input; anything else (no id, no
     * features, a non-number) is a dead letter.
     */
    static final class TransactionEncoder implements RecordEncoder<KafkaMessage> {
        private static final long serialVersionUID = 1L;

        @Override
        public void encode(KafkaMessage message, InputRow row) {
            if (message.value == null || message.value.isBlank()) {
                throw new RecordConversionException("Empty message: expected {\"id\": ..., \"features\": [8 numbers]}");
            }
            JsonNode node;
            try {
                node = JSON.readTree(message.value);
            } catch (JsonProcessingException e) {
                String detail = e.getOriginalMessage();
                throw new RecordConversionException("Malformed JSON: " + detail);
            }
            // The id names the transaction in its prediction and dead letter: a message without one cannot
            // be traced back by whoever reads the predictions, so it is a dead letter, not a score.
            JsonNode id = node == null ? null : node.get("id");
            if (id == null || !id.isTextual() || id.asText().isBlank()) {
                throw new RecordConversionException(
                        "Missing field 'id' (a non-empty string)" + (id == null || id.isNull() ? "" : ", got: " + id));
            }
            JsonNode features = node.get("features");
            if (features == null || !features.isArray()) {
                throw new RecordConversionException(
                        "Missing field 'features' (an array of " + FraudFeatures.WIDTH + " numbers)");
            }
            float[] x = new float[features.size()];
            for (int i = 0; i < x.length; i++) {
                if (!features.get(i).isNumber()) {
                    throw new RecordConversionException("features[" + i + "] is not a number: " + features.get(i));
                }
                x[i] = features.get(i).floatValue();
            }
            row.put("features", x);
        }
    }

    /** Builds the prediction record from the input message and its model outputs. */
    static final class PredictionDecoder implements ResultDecoder<KafkaMessage, Prediction> {
        private static final long serialVersionUID = 1L;
        private final String model;
        private final String sha256;

        PredictionDecoder(String model, String sha256) {
            this.model = model;
            this.sha256 = sha256;
        }

        @Override
        public Prediction decode(KafkaMessage message, OutputRow outputs) {
            Prediction p = new Prediction();
            p.key = message.key;
            p.inputPartition = message.partition;
            p.inputOffset = message.offset;
            p.model = outputs.modelUri() != null ? outputs.modelUri() : model;
            // The version that scored this record: after a model update, no longer the job's first model.
            p.modelVersion = outputs.modelVersion();
            p.modelSha256 = outputs.modelSha256() != null ? outputs.modelSha256() : sha256;
            p.probabilities = outputs.floats("probabilities");
            long now = nowMicros();
            p.scoredAtMillis = now / 1_000;
            // From the source reading the record, not from its Kafka timestamp: a record produced before the
            // job started would otherwise count its wait in the topic as scoring latency.
            p.latencyMs = Math.max(0, now - message.readAtMicros) / 1e3;
            return p;
        }
    }
}
