package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/**
 * Flink SQL as a user runs it: a standalone cluster (a JobManager and a TaskManager, each its own JVM) whose
 * {@code lib/} is Flink's plus what the README says to drop in beside it (the Kafka SQL connector and {@code
 * flink-onnx-sql-<version>-sql-client.jar}; ONNX Runtime is already there), and Flink's SQL Client run
 * non-interactively ({@code sql-client.sh -f score.sql}: {@code SqlClient} in embedded mode, in a JVM of its own
 * with {@code FLINK_CONF_DIR} pointing at the cluster's conf). The script reads JSON transactions from Kafka,
 * scores them with {@code CREATE MODEL ... 'provider' = 'onnx'} and {@code ML_PREDICT}, and writes the predictions
 * to Kafka; every prediction read back equals the model computed in plain Java ({@link FraudReference}).
 */
class SqlClientIT {
    private static final int RECORDS = 200;
    private static final Duration STEP = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern JOB_ID = Pattern.compile("Job ID: ([0-9a-f]{32})");

    @Test
    void theSqlClientRunsAScriptThatScoresKafkaWithMlPredictOnAStandaloneCluster() throws Exception {
        Path flinkLib = Path.of(System.getProperty("flink.lib.dir", "target/flink-lib"));
        Path sqlLib = Path.of(System.getProperty("flink.sql.lib.dir", "target/flink-sql-lib"));
        Path sqlClient = Path.of(System.getProperty("flink.sql.client.dir", "target/flink-sql-client"));
        try (var jars = Files.list(sqlLib)) {
            assertThat(jars.map(j -> j.getFileName().toString()))
                    .as("the SQL Client jar, copied by mvn pre-integration-test")
                    .anyMatch(n -> n.startsWith("flink-onnx-sql-") && n.endsWith("-sql-client.jar"));
        }
        Path home = Path.of("target/sql-client-cluster").toAbsolutePath();
        StandaloneFlinkCluster cluster = null;
        // beside the cluster's folder, which the cluster empties when it starts
        try (TestKafka kafka = TestKafka.startInOwnProcess(home.resolveSibling("sql-client-cluster-kafka.log"));
                StandaloneFlinkCluster c = new StandaloneFlinkCluster(List.of(flinkLib, sqlLib), home, 2)) {
            cluster = c;
            kafka.createTopics(2, "sqlc-in", "sqlc-out");
            c.startJobManager();
            c.startTaskManager();

            // The model as a user has it: a file (the SQL Client's classpath has no examples jar).
            Path model = home.resolve("fraud-mlp.onnx");
            try (InputStream in = SqlClientIT.class.getResourceAsStream("/models/fraud-mlp.onnx")) {
                Files.copy(in, model, StandardCopyOption.REPLACE_EXISTING);
            }
            Map<String, float[]> sent = produce(kafka);

            Path script = home.resolve("score.sql");
            Files.writeString(script, scoreSql(kafka.bootstrapServers(), model));
            c.awaitTaskManagers(1, 2, STEP);

            // sql-client.sh -f score.sql (embedded mode), on lib/ plus opt/'s SQL Client and gateway.
            List<Path> opt;
            try (var jars = Files.list(sqlClient)) {
                opt = jars.toList();
            }
            Process client = c.startClient(
                    "sql-client",
                    opt,
                    List.of(
                            "org.apache.flink.table.client.SqlClient",
                            "embedded",
                            "-f",
                            script.toString(),
                            "-Dexecution.target=remote",
                            "-hist",
                            home.resolve("sql-history").toString()));
            Path out = c.log("sql-client.out");
            assertThat(client.waitFor(STEP.toSeconds(), TimeUnit.SECONDS))
                    .as("the SQL Client returned; see " + out)
                    .isTrue();
            c.forget(client);
            String printed = Files.readString(out);
            // The SQL Client exits 0 even when a statement fails: its output tells.
            assertThat(client.exitValue())
                    .as("SQL Client exit code:\n" + printed)
                    .isZero();
            assertThat(printed).as("the SQL Client's output").doesNotContain("[ERROR]");
            Matcher m = JOB_ID.matcher(printed);
            assertThat(m.find()).as("the INSERT's job id in:\n" + printed).isTrue();
            String jobId = m.group(1);

            // The INSERT reads a bounded source ('scan.bounded.mode' = 'latest-offset'): the job finishes.
            StandaloneFlinkCluster.await("INSERT job " + jobId + " FINISHED", STEP, () -> {
                String state = c.jobState(jobId);
                if (state.equals("FAILED") || state.equals("CANCELED")) {
                    throw new AssertionError("job " + jobId + " " + state + "; see " + c.home() + "/log");
                }
                return state.equals("FINISHED");
            });

            FraudReference reference = FraudReference.load();
            List<ConsumerRecord<String, String>> predictions = kafka.readCommitted("sqlc-out", RECORDS);
            Map<String, Integer> seen = new HashMap<>();
            for (ConsumerRecord<String, String> r : predictions) {
                JsonNode p = JSON.readTree(r.value());
                String id = p.get("id").asText();
                seen.merge(id, 1, Integer::sum);
                float[] expected = reference.probabilities(sent.get(id));
                assertThat(p.get("model_version").asText()).isEqualTo("fraud-mlp-1");
                assertThat(p.get("probabilities")).hasSize(2);
                assertThat((float) p.get("probabilities").get(0).doubleValue())
                        .as(id)
                        .isCloseTo(expected[0], within(1e-5f));
                assertThat((float) p.get("probabilities").get(1).doubleValue())
                        .as(id)
                        .isCloseTo(expected[1], within(1e-5f));
            }
            assertThat(seen).as("one prediction per transaction").hasSize(RECORDS);
            assertThat(seen.values()).as("none twice").containsOnly(1);
            assertThat(Files.readString(c.log("tm-1")))
                    .as("the model ran in the TaskManager, from the sql-client jar in its lib/")
                    .contains("Opened ONNX session");
            for (String name : List.of("jobmanager", "tm-1")) {
                assertThat(Files.readString(c.log(name)))
                        .as(name + "'s log")
                        .doesNotContain("ClassCastException")
                        .doesNotContain("UnsatisfiedLinkError");
            }
        }
        assertThat(cluster.alive()).as("processes left after close").isEmpty();
    }

    /** The script of the README's "SQL Client" walk-through. */
    static String scoreSql(String bootstrap, Path model) {
        return String.join(
                "\n",
                "SET 'execution.runtime-mode' = 'streaming';",
                "",
                "CREATE TABLE transactions (id STRING, features ARRAY<FLOAT>) WITH (",
                "  'connector' = 'kafka', 'topic' = 'sqlc-in', 'properties.bootstrap.servers' = '" + bootstrap + "',",
                "  'properties.group.id' = 'sql-client', 'scan.startup.mode' = 'earliest-offset',",
                "  'scan.bounded.mode' = 'latest-offset', 'format' = 'json');",
                "",
                "CREATE TABLE predictions (id STRING, probabilities ARRAY<FLOAT>, model_version STRING) WITH (",
                "  'connector' = 'kafka', 'topic' = 'sqlc-out', 'properties.bootstrap.servers' = '" + bootstrap + "',",
                "  'format' = 'json');",
                "",
                "CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (probabilities ARRAY<FLOAT>, model_version STRING)",
                "WITH ('provider' = 'onnx', 'path' = '" + model.toAbsolutePath() + "', 'batch.max-size' = '64',",
                "      'model-version' = 'fraud-mlp-1', 'model-version-column' = 'model_version');",
                "",
                "INSERT INTO predictions",
                "SELECT id, probabilities, model_version",
                "FROM ML_PREDICT(TABLE transactions, MODEL fraud, DESCRIPTOR(features));",
                "");
    }

    /** {@value #RECORDS} JSON transactions; returns the features as the job parses them, by id. */
    private static Map<String, float[]> produce(TestKafka kafka) throws Exception {
        Map<String, float[]> sent = new HashMap<>();
        SplittableRandom random = new SplittableRandom(16);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < RECORDS; i++) {
                String id = "t" + i;
                String json = FraudFeatures.toJson(id, FraudFeatures.draw(random));
                JsonNode parsed = JSON.readTree(json).get("features");
                float[] features = new float[parsed.size()];
                for (int k = 0; k < features.length; k++) {
                    features[k] = Float.parseFloat(parsed.get(k).asText());
                }
                sent.put(id, features);
                producer.send(new ProducerRecord<>("sqlc-in", id, json));
            }
            producer.flush();
        }
        return sent;
    }
}
