package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.flink.text.testing.TextModels;
import io.flinkonnx.flink.text.testing.TextReference;
import io.flinkonnx.model.testing.TestModels;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
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
 * The deployment README's "SQL Client" section documents, with real processes: a standalone cluster (a JobManager
 * and a TaskManager, each its own JVM) whose {@code lib/} is a Flink distribution's plus exactly the jars README
 * lists (ONNX Runtime, {@code flink-onnx-sql-<version>-sql-client.jar}, the Kafka SQL connector), and Flink's SQL
 * Client run non-interactively ({@code sql-client.sh -f}: {@code SqlClient} in embedded mode, in a JVM of its own
 * with {@code FLINK_CONF_DIR} pointing at the cluster's conf). On that one cluster:
 *
 * <ul>
 *   <li>{@code docker/sql/score.sql}, the file README prints, with only the changes README names (the Kafka
 *       address and the model path), scores Kafka transactions with {@code ML_PREDICT}; every prediction equals
 *       the model computed in plain Java ({@link FraudReference}), malformed messages are skipped;
 *   <li>a two-input, two-output model answers a {@code SELECT} the client prints as a table (which needs icu4j);
 *   <li>the Kafka scoring job jar, submitted with {@code flink run} beside the Kafka SQL connector in {@code lib/},
 *       scores the same transactions to the same values.
 * </ul>
 */
class SqlClientIT {
    private static final int RECORDS = 200;
    private static final Duration STEP = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern JOB_ID = Pattern.compile("Job ID: ([0-9a-f]{32})");
    /** The user guide page that documents the SQL Client (its lib/ list and score.sql). */
    private static final Path README = Path.of("../docs/sql.md");

    private static final Path SCORE_SQL = Path.of("../docker/sql/score.sql");
    /** What README says to change in score.sql outside the Docker compose: the Kafka address and the model path. */
    private static final String README_KAFKA = "'properties.bootstrap.servers' = 'kafka:9092'";

    private static final String README_MODEL = "'path' = '/models/fraud-mlp.onnx'";

    @Test
    void theJarsReadmeListsForLibAreExactlyTheOnesTheClusterTestsAdd() throws Exception {
        List<String> documented = readmeLibJars();
        List<String> assembled;
        try (var jars = Files.list(onnxLib())) {
            assembled = jars.map(j -> j.getFileName().toString()).toList();
        }
        assertThat(documented)
                .as("README's lib/ list (left) and what the cluster tests add to a distribution's lib/")
                .containsExactlyInAnyOrderElementsOf(assembled);
        // What a distribution has inside its jars, and the tests' lib/ (built from Maven jars) has as jars.
        try (var jars = Files.list(flinkLib())) {
            assertThat(jars.map(j -> j.getFileName().toString()))
                    .anyMatch(n -> n.startsWith("flink-connector-base-"))
                    .anyMatch(n -> n.startsWith("icu4j-"))
                    .noneMatch(n -> n.startsWith("flink-connector-kafka") || n.startsWith("kafka-clients"))
                    .noneMatch(n -> n.startsWith("onnxruntime"));
        }
    }

    @Test
    void readmePrintsScoreSqlExactlyAsTheFileIs() throws Exception {
        String printed = String.join("\n", fencedBlockAfter(Files.readString(README), "<!-- score.sql -->")) + "\n";
        assertThat(printed).isEqualTo(Files.readString(SCORE_SQL));
        String sql = Files.readString(SCORE_SQL);
        assertThat(sql.split(Pattern.quote(README_KAFKA), -1))
                .as("the Kafka address, twice")
                .hasSize(3);
        assertThat(sql.split(Pattern.quote(README_MODEL), -1))
                .as("the model path, once")
                .hasSize(2);
    }

    @Test
    void oneClusterOnReadmesLibRunsScoreSqlATwoInputModelAndTheKafkaJobJar() throws Exception {
        Path jobJar = Path.of(System.getProperty("job.jar", "../examples/target/examples-0.1.0-SNAPSHOT-job.jar"));
        Path sqlClient = Path.of(System.getProperty("flink.sql.client.dir", "target/flink-sql-client"));
        assertThat(jobJar).as("the job jar built by the examples module").exists();
        Path home = Path.of("target/sql-client-cluster").toAbsolutePath();
        StandaloneFlinkCluster cluster = null;
        // beside the cluster's folder, which the cluster empties when it starts
        try (TestKafka kafka = TestKafka.startInOwnProcess(home.resolveSibling("sql-client-cluster-kafka.log"));
                StandaloneFlinkCluster c = new StandaloneFlinkCluster(List.of(flinkLib(), onnxLib()), home, 2)) {
            cluster = c;
            // score.sql's topics, and the job jar's (its defaults, as docker-compose.yml creates them)
            kafka.createTopics(
                    2,
                    "transactions",
                    "sql-predictions",
                    "predictions",
                    "dead-letters",
                    "fallback-reports",
                    "drift-reports");
            c.startJobManager();
            c.startTaskManager();

            // The model as a user has it: a file (the SQL Client's classpath has no examples jar).
            Path model = home.resolve("fraud-mlp.onnx");
            try (InputStream in = SqlClientIT.class.getResourceAsStream("/models/fraud-mlp.onnx")) {
                Files.copy(in, model, StandardCopyOption.REPLACE_EXISTING);
            }
            Map<String, float[]> sent = produce(kafka);
            c.awaitTaskManagers(1, 2, STEP);
            List<Path> opt;
            try (var jars = Files.list(sqlClient)) {
                opt = jars.toList();
            }
            FraudReference reference = FraudReference.load();

            // 1. score.sql with README's two changes.
            String sql = Files.readString(SCORE_SQL)
                    .replace(README_KAFKA, "'properties.bootstrap.servers' = '" + kafka.bootstrapServers() + "'")
                    .replace(README_MODEL, "'path' = '" + model + "'");
            String printed = runSqlClient(c, opt, "score", sql);
            Matcher m = JOB_ID.matcher(printed);
            assertThat(m.find()).as("the INSERT's job id in:\n" + printed).isTrue();
            // The INSERT reads a bounded source ('scan.bounded.mode' = 'latest-offset'): the job finishes.
            awaitFinished(c, m.group(1));
            Map<String, Integer> seen = new HashMap<>();
            for (ConsumerRecord<String, String> r : kafka.readCommitted("sql-predictions", RECORDS)) {
                JsonNode p = JSON.readTree(r.value());
                String id = p.get("id").asText();
                seen.merge(id, 1, Integer::sum);
                assertThat(p.get("model_version").asText()).isEqualTo("fraud-mlp-1");
                assertProbabilities(id, p.get("probabilities"), reference.probabilities(sent.get(id)));
            }
            assertThat(seen).as("one prediction per well-formed transaction").hasSize(RECORDS);
            assertThat(seen.values()).as("none twice").containsOnly(1);

            // 2. A two-input, two-output model, its result printed by the client (flink-table-common's TableauStyle,
            //    which needs icu4j: a distribution has it inside flink-table-api-java-uber).
            Path multi = TestModels.writeMultiInputMultiOutput(home.resolve("multi.onnx"));
            String table = runSqlClient(c, opt, "multi", multiIoSql(multi));
            assertThat(table)
                    .as("the printed result of the two-input, two-output model")
                    .containsPattern("\\|\\s*k1\\s*\\|\\s*\\[3\\.0, 4\\.0, 5\\.0, 6\\.0]\\s*\\|\\s*"
                            + "\\[2\\.0, 4\\.0, 6\\.0, 8\\.0]\\s*\\|")
                    .containsPattern("\\|\\s*k2\\s*\\|\\s*\\[0\\.5, 0\\.5, 0\\.5, 0\\.5]\\s*\\|\\s*"
                            + "\\[-0\\.5, -0\\.5, -0\\.5, -0\\.5]\\s*\\|");

            // 2b. A text model: the tokenizer (DJL's natives, inside the sql-client jar) in the client and the
            // TaskManager.
            Path classifier = TextModels.writeClassifier(home.resolve("text/classifier.onnx"));
            Path tokenizer = TextModels.writeTokenizer(home.resolve("text/tokenizer.json"));
            Path config = TextModels.writeConfig(home.resolve("text/config.json"));
            String labels = runSqlClient(c, opt, "text", textSql(classifier, tokenizer, config));
            try (TextReference textReference = new TextReference(classifier, tokenizer, 512)) {
                for (int i = 0; i < TEXTS.size(); i++) {
                    assertThat(labels)
                            .as("the printed label of text %s", i)
                            .containsPattern("\\|\\s*t" + i + "\\s*\\|\\s*"
                                    + textReference.topLabel(TEXTS.get(i))[0] + "\\s*\\|");
                }
            }

            // 3. The Kafka job jar on the same cluster, beside the Kafka SQL connector in lib/, over the same input.
            String job = c.submit(
                    jobJar,
                    "flink-run",
                    List.of("--bootstrap.servers=" + kafka.bootstrapServers(), "--bounded=true", "--parallelism=2"));
            awaitFinished(c, job);
            Map<String, Integer> scored = new HashMap<>();
            for (ConsumerRecord<String, String> r : kafka.readCommitted("predictions", RECORDS)) {
                JsonNode p = JSON.readTree(r.value());
                String id = p.get("key").asText();
                scored.merge(id, 1, Integer::sum);
                assertProbabilities(id, p.get("probabilities"), reference.probabilities(sent.get(id)));
            }
            assertThat(scored)
                    .as("the job jar: one prediction per well-formed transaction")
                    .hasSize(RECORDS);
            assertThat(scored.values()).as("none twice").containsOnly(1);
            assertThat(kafka.readCommitted("dead-letters", MALFORMED.size()))
                    .as("the job jar's dead letters: the malformed messages")
                    .hasSize(MALFORMED.size());

            assertThat(Files.readString(c.log("tm-1")))
                    .as("the model ran in the TaskManager, from the sql-client jar in its lib/")
                    .contains("Opened ONNX session");
            for (String name : List.of("jobmanager", "tm-1")) {
                assertThat(Files.readString(c.log(name)))
                        .as(name + "'s log")
                        .doesNotContain("ClassCastException")
                        .doesNotContain("AbstractMethodError")
                        .doesNotContain("UnsatisfiedLinkError");
            }
        }
        assertThat(cluster.alive()).as("processes left after close").isEmpty();
    }

    /**
     * {@code sql-client.sh -f NAME.sql} (embedded mode) on the cluster's lib/ plus opt/'s SQL Client and gateway;
     * returns what it printed, which shows no error (the client exits 0 even when a statement fails).
     */
    private static String runSqlClient(StandaloneFlinkCluster c, List<Path> opt, String name, String sql)
            throws Exception {
        Path script = c.home().resolve(name + ".sql");
        Files.writeString(script, sql);
        Process client = c.startClient(
                "sql-client-" + name,
                opt,
                List.of(
                        "org.apache.flink.table.client.SqlClient",
                        "embedded",
                        "-f",
                        script.toString(),
                        "-Dexecution.target=remote",
                        "-hist",
                        c.home().resolve("sql-history-" + name).toString()));
        Path out = c.log("sql-client-" + name + ".out");
        assertThat(client.waitFor(STEP.toSeconds(), TimeUnit.SECONDS))
                .as("the SQL Client returned; see " + out)
                .isTrue();
        c.forget(client);
        String printed = Files.readString(out);
        assertThat(client.exitValue()).as("SQL Client exit code:\n" + printed).isZero();
        assertThat(printed).as("the SQL Client's output").doesNotContain("[ERROR]");
        return printed;
    }

    /** Waits for FINISHED; fails at once on FAILED or CANCELED, or when the job has failed once (a restart loop). */
    private static void awaitFinished(StandaloneFlinkCluster c, String jobId) {
        StandaloneFlinkCluster.await("job " + jobId + " FINISHED", STEP, () -> {
            String state = c.jobState(jobId);
            JsonNode exceptions = c.getOrNull("/jobs/" + jobId + "/exceptions");
            JsonNode history = exceptions == null ? null : exceptions.path("exceptionHistory");
            if (state.equals("FAILED")
                    || state.equals("CANCELED")
                    || (history != null && history.path("entries").size() > 0)) {
                String root = history == null
                        ? ""
                        : history.path("entries").path(0).path("stacktrace").asText();
                throw new AssertionError(
                        "job " + jobId + " " + state + ", failed with:\n" + root + "\nsee " + c.home() + "/log");
            }
            return state.equals("FINISHED");
        });
    }

    private static void assertProbabilities(String id, JsonNode actual, float[] expected) {
        assertThat(actual).as(id).hasSize(2);
        for (int k = 0; k < 2; k++) {
            assertThat((float) actual.get(k).doubleValue()).as(id).isCloseTo(expected[k], within(1e-5f));
        }
    }

    private static final List<String> TEXTS =
            List.of("the service was late, i want a refund", "great film!", "flink streams text", "not bad at all");

    /** A text classifier with its tokenizer and config.json over {@link #TEXTS}, labels printed as a table. */
    private static String textSql(Path model, Path tokenizer, Path config) {
        StringBuilder values = new StringBuilder();
        for (int i = 0; i < TEXTS.size(); i++) {
            values.append(i == 0 ? "" : ",")
                    .append("('t")
                    .append(i)
                    .append("', '")
                    .append(TEXTS.get(i))
                    .append("')");
        }
        return String.join(
                "\n",
                "SET 'execution.runtime-mode' = 'batch';",
                "SET 'sql-client.execution.result-mode' = 'tableau';",
                "CREATE TEMPORARY VIEW tickets AS SELECT * FROM (VALUES " + values + ") AS t(id, body);",
                "CREATE MODEL sentiment INPUT (body STRING) OUTPUT (label STRING, score FLOAT)",
                "WITH ('provider' = 'onnx', 'path' = '" + model.toAbsolutePath() + "', 'tokenizer' = '"
                        + tokenizer.toAbsolutePath() + "', 'labels.config' = '" + config.toAbsolutePath() + "');",
                "SELECT id, label, score FROM ML_PREDICT(TABLE tickets, MODEL sentiment, DESCRIPTOR(body)) ORDER BY id;",
                "");
    }

    /** A two-input, two-output model ({@code sum = a + b}, {@code prod = a * b}) over two rows, printed as a table. */
    private static String multiIoSql(Path model) {
        return String.join(
                "\n",
                "SET 'execution.runtime-mode' = 'batch';",
                "SET 'sql-client.execution.result-mode' = 'tableau';",
                "CREATE TEMPORARY VIEW pairs AS SELECT * FROM (VALUES",
                "  ('k1', ARRAY[1.0, 2.0, 3.0, 4.0], ARRAY[2.0, 2.0, 2.0, 2.0]),",
                "  ('k2', ARRAY[1.0, 1.0, 1.0, 1.0], ARRAY[-0.5, -0.5, -0.5, -0.5])) AS t(k, a, b);",
                "CREATE TEMPORARY VIEW typed AS SELECT k, CAST(a AS ARRAY<FLOAT>) AS a, CAST(b AS ARRAY<FLOAT>) AS b"
                        + " FROM pairs;",
                "CREATE MODEL multi INPUT (a ARRAY<FLOAT>, b ARRAY<FLOAT>) OUTPUT (`sum` ARRAY<FLOAT>, prod ARRAY<FLOAT>)",
                "WITH ('provider' = 'onnx', 'path' = '" + model.toAbsolutePath() + "');",
                "SELECT k, `sum`, prod FROM ML_PREDICT(TABLE typed, MODEL multi, DESCRIPTOR(a, b)) ORDER BY k;",
                "");
    }

    /** The two kinds of malformed message the compose file's producer sends (truncated JSON, a wrong width). */
    private static final List<String> MALFORMED =
            List.of("{\"id\":\"bad-1\",\"features\":[1,2,3", "{\"id\":\"bad-2\",\"features\":[1,2,3]}");

    /**
     * {@value #RECORDS} JSON transactions to {@code transactions}, then the malformed ones; returns the features of
     * the well-formed ones as the job parses them, by id.
     */
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
                producer.send(new ProducerRecord<>("transactions", id, json));
            }
            for (int i = 0; i < MALFORMED.size(); i++) {
                producer.send(new ProducerRecord<>("transactions", "bad-" + (i + 1), MALFORMED.get(i)));
            }
            producer.flush();
        }
        return sent;
    }

    /** The jar file names the SQL guide's "SQL Client" section (docs/sql.md) lists for lib/ (beside a distribution's). */
    static List<String> readmeLibJars() throws Exception {
        List<String> jars = new ArrayList<>();
        for (String line : fencedBlockAfter(Files.readString(README), "<!-- lib/ list -->")) {
            if (!line.isBlank()) {
                jars.add(line.trim().split("\\s+")[0]);
            }
        }
        return jars;
    }

    /** The lines of the first fenced code block after the line holding {@code anchor} in {@code markdown}. */
    static List<String> fencedBlockAfter(String markdown, String anchor) {
        List<String> lines = markdown.lines().toList();
        int at = -1;
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).contains(anchor)) {
                at = i;
                break;
            }
        }
        assertThat(at).as("docs/sql.md holds " + anchor).isNotNegative();
        int open = at + 1;
        while (open < lines.size() && !lines.get(open).startsWith("```")) {
            open++;
        }
        List<String> block = new ArrayList<>();
        for (int i = open + 1; i < lines.size() && !lines.get(i).startsWith("```"); i++) {
            block.add(lines.get(i));
        }
        return block;
    }

    static Path flinkLib() {
        return Path.of(System.getProperty("flink.lib.dir", "target/flink-lib"));
    }

    static Path onnxLib() {
        return Path.of(System.getProperty("flink.onnx.lib.dir", "target/flink-onnx-lib"));
    }
}
