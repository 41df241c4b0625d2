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
import java.util.concurrent.TimeUnit;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

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
                "no-id", "{\"features\":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}",
                "number-id", "{\"id\":7,\"features\":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}",
                "short", "{\"id\":\"short\",\"features\":[0.1,0.2,0.3]}",
                "text", "{\"id\":\"text\",\"features\":[0.1,\"x\",0,0,0,0,0,0]}",
                "empty", "");
        SplittableRandom random = new SplittableRandom(5);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < 500; i++) {
                float[] f = FraudFeatures.draw(random);
                sent.put("t-" + i, f);
                producer.send(new ProducerRecord<>("e2e-in", "t-" + i, FraudFeatures.toJson("t-" + i, f)))
                        .get(60, TimeUnit.SECONDS); // acknowledged one by one, as in sendSqlTransactions
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
        assertThat(byKey.get("no-id").get("reason").asText()).isEqualTo("Missing field 'id' (a non-empty string)");
        assertThat(byKey.get("number-id").get("reason").asText())
                .isEqualTo("Missing field 'id' (a non-empty string), got: 7");
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
    void aModelPerCountryScoresEachMessageWithItsCountrysModelAndAMissingModelCostsOnlyItsMessages(
            @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Files.write(
                dir.resolve("fraud-DE.onnx"), FraudReference.bundled().toByteArray());
        java.nio.file.Files.write(
                dir.resolve("fraud-FR.onnx"), FraudReference.secondVersion().toByteArray());
        Map<String, FraudReference> references =
                Map.of("DE", FraudReference.load(), "FR", FraudReference.of(FraudReference.secondVersion()));
        kafka.createTopics(2, "mm-in", "mm-out", "mm-dead", "mm-fallback", "mm-drift");
        Map<String, float[]> sent = new HashMap<>();
        Map<String, String> country = new HashMap<>();
        SplittableRandom random = new SplittableRandom(23);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < 300; i++) {
                float[] f = FraudFeatures.draw(random);
                String c = i % 30 == 29 ? "XX" : (i % 2 == 0 ? "DE" : "FR");
                String json = FraudFeatures.toJson("t-" + i, f);
                sent.put("t-" + i, f);
                country.put("t-" + i, c);
                // acknowledged one by one, as in sendSqlTransactions: the broker may refuse a send just after the
                // topic is created (NOT_LEADER_OR_FOLLOWER, then OUT_OF_ORDER_SEQUENCE_NUMBER on the retries)
                producer.send(new ProducerRecord<>(
                                "mm-in",
                                "t-" + i,
                                json.substring(0, json.length() - 1) + ",\"country\":\"" + c + "\"}"))
                        .get(60, TimeUnit.SECONDS);
            }
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        KafkaScoringJob.build(
                env,
                ScoringJobConfig.defaults()
                        .with("bootstrap.servers", kafka.bootstrapServers())
                        .with("topic.input", "mm-in")
                        .with("topic.output", "mm-out")
                        .with("topic.dead-letters", "mm-dead")
                        .with("topic.fallback-reports", "mm-fallback")
                        .with("topic.drift-reports", "mm-drift")
                        .with("group.id", "mm")
                        .with("transactional-id-prefix", "mm")
                        .with("checkpoint.interval-ms", "200")
                        .with("model.selector.field", "country")
                        .with("model.selector.uri-template", dir + "/fraud-{key}.onnx")
                        .with("models.max", "2")
                        .with("bounded", "true"));
        env.execute("kafka model per country");

        List<ConsumerRecord<String, String>> predictions = kafka.readCommitted("mm-out", 290);
        assertThat(predictions).hasSize(290);
        for (ConsumerRecord<String, String> r : predictions) {
            JsonNode p = JSON.readTree(r.value());
            String c = country.get(r.key());
            assertThat(p.get("model").asText()).endsWith("fraud-" + c + ".onnx");
            assertThat(p.get("modelVersion").asText()).isEqualTo("fraud-" + c);
            float[] expected = references.get(c).probabilities(sent.get(r.key()));
            assertThat((float) p.get("probabilities").get(1).doubleValue()).isCloseTo(expected[1], within(1e-5f));
        }
        List<ConsumerRecord<String, String>> dead = kafka.readCommitted("mm-dead", 10);
        assertThat(dead).hasSize(10).allSatisfy(r -> {
            JsonNode d = JSON.readTree(r.value());
            assertThat(country.get(r.key())).isEqualTo("XX");
            assertThat(d.get("reason").asText()).contains("fraud-XX.onnx").contains("failed to load");
        });
    }

    @Test
    void sqlKafkaSourceMlPredictKafkaSinkScoresLikeTheReferenceAndDeadLettersBadRows() throws Exception {
        kafka.createTopics(2, "sql-in", "sql-out", "sql-dead");
        Map<String, float[]> sent = sendSqlTransactions("sql-in", 300);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            producer.send(new ProducerRecord<>("sql-in", "short", "{\"id\":\"short\",\"features\":[1,2]}"));
            producer.send(new ProducerRecord<>(
                    "sql-in", "null-element", "{\"id\":\"null-element\",\"features\":[1,null,3,4,5,6,7,8]}"));
            producer.send(new ProducerRecord<>("sql-in", "empty", "{\"id\":\"empty\",\"features\":[]}"));
        }
        SqlScoringExample.run(kafka.bootstrapServers(), "sql-in", "sql-out", "sql-dead", true);

        FraudReference reference = FraudReference.load();
        List<ConsumerRecord<String, String>> predictions = kafka.readCommitted("sql-out", 300);
        assertThat(predictions).hasSize(300);
        for (ConsumerRecord<String, String> r : predictions) {
            JsonNode p = JSON.readTree(r.value());
            float[] expected = reference.probabilities(sent.get(p.get("id").asText()));
            assertThat((float) p.get("probabilities").get(1).doubleValue()).isCloseTo(expected[1], within(1e-5f));
            assertThat(p.get("model_version").asText()).isEqualTo("fraud-mlp-1");
        }
        Map<String, String> deadLetters = new HashMap<>();
        for (ConsumerRecord<String, String> r : kafka.readCommitted("sql-dead", 3)) {
            JsonNode d = JSON.readTree(r.value());
            deadLetters.put(d.get("id").asText(), d.get("reason").asText());
        }
        assertThat(deadLetters).containsOnlyKeys("short", "null-element", "empty");
        assertThat(deadLetters.get("empty")).contains("the record has 0");
        assertThat(deadLetters.get("short")).contains("expects 8 values per record");
        assertThat(deadLetters.get("null-element")).contains("Element 1 of column 'features' is NULL");
    }

    @ParameterizedTest(name = "elements {0}")
    @ValueSource(strings = {"FLOAT", "FLOAT NOT NULL"})
    void theScalarFunctionScoresAJsonKafkaTablesArraysLikeTheReference(String elementType) throws Exception {
        String topic = "sql-scalar-" + (elementType.contains("NOT") ? "not-null" : "nullable");
        kafka.createTopics(2, topic);
        Map<String, float[]> sent = sendSqlTransactions(topic, 100);
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        t.executeSql("CREATE TABLE txns (id STRING, features ARRAY<" + elementType + ">) WITH ('connector' = 'kafka',"
                + " 'topic' = '" + topic + "', 'properties.bootstrap.servers' = '" + kafka.bootstrapServers() + "',"
                + " 'properties.group.id' = 'scalar', 'scan.startup.mode' = 'earliest-offset',"
                + " 'scan.bounded.mode' = 'latest-offset', 'format' = 'json')");
        t.executeSql("CREATE FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction'");
        List<Row> rows = FlinkClusters.drain(
                t.executeSql("SELECT id, score('classpath:models/fraud-mlp.onnx', features) FROM txns")
                        .collect());
        FraudReference reference = FraudReference.load();
        assertThat(rows).hasSize(100);
        for (Row r : rows) {
            float[] expected = reference.probabilities(sent.get((String) r.getField(0)));
            Float[] actual = (Float[]) r.getField(1);
            assertThat(actual[1]).isCloseTo(expected[1], within(1e-5f));
        }
    }

    private Map<String, float[]> sendSqlTransactions(String topic, int n) throws Exception {
        Map<String, float[]> sent = new HashMap<>();
        SplittableRandom random = new SplittableRandom(9);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < n; i++) {
                float[] f = FraudFeatures.draw(random);
                sent.put("s-" + i, f);
                // acknowledged one by one: a send the broker refuses fails the test here, not as missing output
                producer.send(new ProducerRecord<>(topic, "s-" + i, FraudFeatures.toJson("s-" + i, f)))
                        .get(60, TimeUnit.SECONDS);
            }
        }
        return sent;
    }
}
