package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.examples.KafkaScoringJob;
import io.flinkonnx.examples.ScoringJobConfig;
import io.flinkonnx.examples.SqlScoringExample;
import io.flinkonnx.testing.FlinkClusters;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Kafka-to-Kafka job end to end against a real broker: predictions, and dead letters. */
class KafkaScoringIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static TestKafka kafka;

    @BeforeAll
    static void broker() throws Exception {
        kafka = TestKafka.start();
    }

    @AfterAll
    static void stop() throws Exception {
        kafka.close();
    }

    @Test
    void predictionsEqualTheReferenceAndMalformedMessagesBecomeDeadLetters() throws Exception {
        kafka.createTopics(3, "e2e-in");
        kafka.createTopics(2, "e2e-out", "e2e-dead", "e2e-fallback", "e2e-drift");
        Map<String, float[]> sent = new HashMap<>();
        Map<String, String> malformed = Map.of(
                "bad-json", "{\"id\":\"bad-json\",\"features\":[0.1,",
                "no-features", "{\"id\":\"no-features\"}",
                "short", "{\"id\":\"short\",\"features\":[0.1,0.2,0.3]}",
                "text", "{\"id\":\"text\",\"features\":[0.1,\"x\",0,0,0,0,0,0]}",
                "empty", "");
        SplittableRandom random = new SplittableRandom(5);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < 500; i++) {
                float[] f = FraudFeatures.draw(random);
                sent.put("t-" + i, f);
                producer.send(new ProducerRecord<>("e2e-in", "t-" + i, FraudFeatures.toJson("t-" + i, f)));
            }
            malformed.forEach((k, v) -> producer.send(new ProducerRecord<>("e2e-in", k, v)));
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        KafkaScoringJob.build(
                env,
                ScoringJobConfig.defaults()
                        .with("bootstrap.servers", kafka.bootstrapServers())
                        .with("topic.input", "e2e-in")
                        .with("topic.output", "e2e-out")
                        .with("topic.dead-letters", "e2e-dead")
                        .with("topic.fallback-reports", "e2e-fallback")
                        .with("topic.drift-reports", "e2e-drift")
                        .with("group.id", "e2e")
                        .with("transactional-id-prefix", "e2e")
                        .with("checkpoint.interval-ms", "200")
                        .with("bounded", "true"));
        env.execute("kafka e2e");

        FraudReference reference = FraudReference.load();
        List<ConsumerRecord<String, String>> predictions = kafka.readCommitted("e2e-out", 500);
        assertThat(predictions).hasSize(500);
        for (ConsumerRecord<String, String> r : predictions) {
            JsonNode p = JSON.readTree(r.value());
            float[] expected = reference.probabilities(sent.get(r.key()));
            assertThat((float) p.get("probabilities").get(0).doubleValue()).isCloseTo(expected[0], within(1e-5f));
            assertThat((float) p.get("probabilities").get(1).doubleValue()).isCloseTo(expected[1], within(1e-5f));
            assertThat(p.get("modelSha256").asText()).hasSize(64);
        }
        assertThat(predictions).extracting(ConsumerRecord::key).containsExactlyInAnyOrderElementsOf(sent.keySet());

        List<ConsumerRecord<String, String>> dead = kafka.readCommitted("e2e-dead", malformed.size());
        assertThat(dead).extracting(ConsumerRecord::key).containsExactlyInAnyOrderElementsOf(malformed.keySet());
        Map<String, JsonNode> byKey = new HashMap<>();
        for (ConsumerRecord<String, String> r : dead) {
            byKey.put(r.key(), JSON.readTree(r.value()));
        }
        assertThat(byKey.get("bad-json").get("reason").asText()).startsWith("Malformed JSON");
        assertThat(byKey.get("no-features").get("reason").asText()).startsWith("Missing field 'features'");
        assertThat(byKey.get("short").get("reason").asText())
                .contains("expects 8 values per record")
                .contains("has 3");
        assertThat(byKey.get("text").get("reason").asText()).isEqualTo("features[1] is not a number: \"x\"");
        assertThat(byKey.get("empty").get("reason").asText()).startsWith("Empty message");
        assertThat(byKey.values()).allSatisfy(d -> {
            assertThat(d.get("topic").asText()).isEqualTo("e2e-in");
            assertThat(d.get("offset").asLong()).isNotNegative();
            assertThat(d.get("partition").asInt()).isBetween(0, 2);
        });

        List<ConsumerRecord<String, String>> fallback = kafka.readCommitted("e2e-fallback", 2);
        assertThat(fallback).hasSize(2);
        assertThat(JSON.readTree(fallback.get(0).value()).get("verdict").asText())
                .isEqualTo("CPU_AS_REQUESTED");
    }

    @Test
    void sqlKafkaSourceMlPredictKafkaSinkScoresLikeTheReference() throws Exception {
        kafka.createTopics(2, "sql-in", "sql-out");
        Map<String, float[]> sent = new HashMap<>();
        SplittableRandom random = new SplittableRandom(9);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < 300; i++) {
                float[] f = FraudFeatures.draw(random);
                sent.put("s-" + i, f);
                producer.send(new ProducerRecord<>("sql-in", "s-" + i, FraudFeatures.toJson("s-" + i, f)));
            }
            producer.send(new ProducerRecord<>("sql-in", "bad", "{\"id\":\"bad\",\"features\":[1,2]}"));
        }
        SqlScoringExample.run(kafka.bootstrapServers(), "sql-in", "sql-out", true);

        FraudReference reference = FraudReference.load();
        List<ConsumerRecord<String, String>> predictions = kafka.readCommitted("sql-out", 300);
        assertThat(predictions).hasSize(300);
        for (ConsumerRecord<String, String> r : predictions) {
            JsonNode p = JSON.readTree(r.value());
            float[] expected = reference.probabilities(sent.get(p.get("id").asText()));
            assertThat((float) p.get("probabilities").get(1).doubleValue()).isCloseTo(expected[1], within(1e-5f));
        }
    }
}
