package io.flinkonnx.examples;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.flink.text.SentenceEmbedding;
import io.flinkonnx.flink.text.TextEncoder;
import io.flinkonnx.flink.text.TextExtractor;
import java.io.IOException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Kafka text messages to sentence embeddings, exactly-once: {@code {"id": "...", "text": "..."}} (key = id) is
 * tokenized by a Hugging Face {@code tokenizer.json} ({@link TextEncoder}), scored by the batching operator in
 * length buckets, mean-pooled under the attention mask and L2-normalised ({@link SentenceEmbedding}); each
 * embedding ({@code {"id", "inputPartition", "inputOffset", "embedding": [...]}}) goes to the output topic, each
 * bad message (not JSON, no {@code text} field, empty text, text that tokenizes to nothing) to the dead-letter
 * topic with its reason. Both sinks are transactional EXACTLY_ONCE Kafka sinks committed with Flink's checkpoints.
 * The defaults use the bundled model and tokenizer ({@code models/text/}, written by {@code TextModels}).
 *
 * <pre>
 * flink run -c io.flinkonnx.examples.TextEmbeddingJob flink-onnx-examples-job.jar \
 *     --bootstrap.servers=kafka:9092 --model=s3://models/minilm/model.onnx \
 *     --tokenizer=s3://models/minilm/tokenizer.json --max-length=256
 * </pre>
 */
public final class TextEmbeddingJob {
    /** The settings and their defaults; {@code --key=value} flags override them, unknown keys are refused. */
    static final Map<String, String> DEFAULTS = new LinkedHashMap<>();

    static {
        DEFAULTS.put("bootstrap.servers", "localhost:9092");
        DEFAULTS.put("topic.input", "texts");
        DEFAULTS.put("topic.output", "embeddings");
        DEFAULTS.put("topic.dead-letters", "text-dead-letters");
        DEFAULTS.put("model", "classpath:models/text/encoder.onnx");
        DEFAULTS.put("tokenizer", "classpath:models/text/tokenizer.json");
        DEFAULTS.put("max-length", "128");
        DEFAULTS.put("batch.max-size", "64");
        DEFAULTS.put("batch.max-delay-ms", "5");
        DEFAULTS.put("checkpoint.interval-ms", "1000");
        DEFAULTS.put("group.id", "flink-onnx-text");
        DEFAULTS.put("transactional-id-prefix", "flink-onnx-text");
        DEFAULTS.put("bounded", "false");
        DEFAULTS.put("parallelism", "2");
    }

    private TextEmbeddingJob() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> c = settings(args);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        build(env, c);
        env.execute("flink-onnx Kafka text embeddings");
    }

    /** The defaults overridden by {@code --key=value} flags. */
    static Map<String, String> settings(String... args) {
        Map<String, String> c = new LinkedHashMap<>(DEFAULTS);
        for (String arg : args) {
            int eq = arg.indexOf('=');
            String key = arg.startsWith("--") && eq > 2 ? arg.substring(2, eq) : null;
            if (key == null || !DEFAULTS.containsKey(key)) {
                throw new IllegalArgumentException(
                        "Unknown argument '" + arg + "'; use --key=value with a key of " + DEFAULTS.keySet());
            }
            c.put(key, arg.substring(eq + 1));
        }
        return c;
    }

    /** Adds the whole pipeline to {@code env}: source, scoring and both sinks. */
    public static void build(StreamExecutionEnvironment env, Map<String, String> c) {
        embedAndSink(c, source(env, c));
    }

    /** The Kafka source of text messages (read_committed), with checkpointing and parallelism set on {@code env}. */
    static DataStream<KafkaMessage> source(StreamExecutionEnvironment env, Map<String, String> c) {
        env.enableCheckpointing(Long.parseLong(c.get("checkpoint.interval-ms")), CheckpointingMode.EXACTLY_ONCE);
        env.setParallelism(Integer.parseInt(c.get("parallelism")));
        var source = KafkaSource.<KafkaMessage>builder()
                .setBootstrapServers(c.get("bootstrap.servers"))
                .setTopics(c.get("topic.input"))
                .setGroupId(c.get("group.id"))
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setDeserializer(new KafkaScoringJob.MessageDeserializer())
                .setProperty("isolation.level", "read_committed");
        if (Boolean.parseBoolean(c.get("bounded"))) {
            source.setBounded(OffsetsInitializer.latest());
        }
        return env.fromSource(source.build(), WatermarkStrategy.noWatermarks(), "texts")
                .uid("texts");
    }

    /** Scores {@code messages} and writes embeddings and dead letters to their topics. */
    static SingleOutputStreamOperator<EmbeddedText> embedAndSink(
            Map<String, String> c, DataStream<KafkaMessage> messages) {
        OnnxInferenceSpec<KafkaMessage, EmbeddedText> spec = OnnxInference.<KafkaMessage>builder(c.get("model"))
                .encoder(TextEncoder.builder(c.get("tokenizer"), new TextField())
                        .maxLength(Integer.parseInt(c.get("max-length")))
                        .build())
                .decoder(
                        new EmbeddingDecoder(SentenceEmbedding.mean().normalized()),
                        TypeInformation.of(EmbeddedText.class))
                .build();
        // Length buckets and the attention mask are the policy's defaults: each text keeps its own length.
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(Integer.parseInt(c.get("batch.max-size")))
                .maxBatchDelay(Duration.ofMillis(Long.parseLong(c.get("batch.max-delay-ms"))))
                .build();
        SingleOutputStreamOperator<EmbeddedText> embedded =
                OnnxInference.batched(messages, spec, policy).name("embed").uid("embed");
        String prefix = c.get("transactional-id-prefix");
        ScoringJobConfig kafka = ScoringJobConfig.defaults().with("bootstrap.servers", c.get("bootstrap.servers"));
        embedded.map(e -> Tuple2.of(e.id, KafkaScoringJob.json(e)))
                .returns(KafkaScoringJob.KEYED_JSON)
                .name("embedding-json")
                .uid("embedding-json")
                .sinkTo(KafkaScoringJob.sink(kafka, c.get("topic.output"), prefix + "-embeddings"))
                .name("embeddings")
                .uid("embeddings");
        embedded.getSideOutput(FailedRecord.tag(messages.getType()))
                .map(f -> Tuple2.of(f.record.key, KafkaScoringJob.deadLetterJson(f)))
                .returns(KafkaScoringJob.KEYED_JSON)
                .name("text-dead-letter-json")
                .uid("text-dead-letter-json")
                .sinkTo(KafkaScoringJob.sink(kafka, c.get("topic.dead-letters"), prefix + "-dead-letters"))
                .name("text-dead-letters")
                .uid("text-dead-letters");
        return embedded;
    }

    /**
     * The message's {@code text} field. A message that is not JSON, or has no {@code id} or no {@code text}
     * string, is refused with the reason (a dead letter); an empty text is refused by the encoder.
     */
    static final class TextField implements TextExtractor<KafkaMessage> {
        private static final long serialVersionUID = 1L;

        @Override
        public String text(KafkaMessage message) {
            JsonNode node = parse(message);
            JsonNode text = node.get("text");
            if (text == null || !text.isTextual()) {
                throw new RecordConversionException(
                        "Missing field 'text' (a string)" + (text == null || text.isNull() ? "" : ", got: " + text));
            }
            return text.asText();
        }
    }

    static JsonNode parse(KafkaMessage message) {
        if (message.value == null || message.value.isBlank()) {
            throw new RecordConversionException("Empty message: expected {\"id\": ..., \"text\": ...}");
        }
        JsonNode node;
        try {
            node = KafkaScoringJob.JSON.readTree(message.value);
        } catch (JsonProcessingException e) {
            throw new RecordConversionException("Malformed JSON: " + e.getOriginalMessage());
        }
        if (node == null || !node.isObject()) {
            throw new RecordConversionException("Expected a JSON object {\"id\": ..., \"text\": ...}");
        }
        JsonNode id = node.get("id");
        if (id == null || !id.isTextual() || id.asText().isBlank()) {
            throw new RecordConversionException("Missing field 'id' (a non-empty string)");
        }
        return node;
    }

    /** The embedding with the message's id and where it was read. */
    static final class EmbeddingDecoder implements ResultDecoder<KafkaMessage, EmbeddedText> {
        private static final long serialVersionUID = 1L;
        private final SentenceEmbedding embedding;

        EmbeddingDecoder(SentenceEmbedding embedding) {
            this.embedding = embedding;
        }

        @Override
        public EmbeddedText decode(KafkaMessage message, OutputRow outputs) throws IOException {
            EmbeddedText e = new EmbeddedText();
            e.id = KafkaScoringJob.JSON.readTree(message.value).get("id").asText();
            e.inputPartition = message.partition;
            e.inputOffset = message.offset;
            e.embedding = embedding.embed(outputs);
            return e;
        }
    }
}
