package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Predicate;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.junit.jupiter.api.Test;

/**
 * The deployment users run, with real processes: a standalone Flink session cluster (a JobManager and two
 * TaskManagers, each its own JVM on the {@code lib/} README documents: a Flink distribution's plus ONNX Runtime,
 * the SQL Client jar and the Kafka SQL connector; ORT parent-first), the
 * Kafka scoring job jar submitted with Flink's CLI ({@code flink run}), a TaskManager killed with SIGKILL
 * mid-stream, and a resubmission after a cancel. Sessions are counted through the REST metrics API: per
 * scoring subtask while a job runs, and per TaskManager ({@code flinkonnx.open_sessions}) after each cancel.
 * Every Flink process serves Flink's Prometheus reporter: while the resubmitted job runs, its TaskManagers'
 * endpoints are scraped for the library's metrics (inferences, dead letters, batch size, latency, sessions, model
 * version, fallback, drift), and every metric the Grafana dashboard of {@code docker/} queries must be there.
 */
class StandaloneClusterIT {
    private static final int RECORDS = 2_000;
    /** Messages the job cannot score, one every 200 transactions: dead letters. */
    private static final int MALFORMED = 10;

    private static final int MAX_BATCH = 64;
    private static final int PARALLELISM = 2;
    private static final String OP = MetricsReference.OPERATOR_PREFIX;
    private static final Duration STEP = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void theJobJarOnAStandaloneClusterSurvivesASigkilledTaskManagerAndRunsAgainAfterACancel() throws Exception {
        Path jar = Path.of(System.getProperty("job.jar", "../examples/target/examples-0.1.0-SNAPSHOT-job.jar"));
        assertThat(jar).as("the job jar built by the examples module").exists();
        Path golden = goldenVectors(Path.of("target/standalone-cluster-golden"));
        StandaloneFlinkCluster cluster = null;
        // beside the cluster's folder, which the cluster empties when it starts
        try (TestKafka kafka = TestKafka.startInOwnProcess(Path.of("target/standalone-cluster-kafka.log"));
                StandaloneFlinkCluster c = new StandaloneFlinkCluster(
                        List.of(SqlClientIT.flinkLib(), SqlClientIT.onnxLib()),
                        Path.of("target/standalone-cluster"),
                        2)) {
            cluster = c;
            c.enablePrometheusReporter();
            kafka.createTopics(2, "sc-in", "sc-out-1", "sc-out-2", "sc-dead", "sc-fallback", "sc-drift");
            c.startJobManager();
            Map<String, Process> taskManagers = new LinkedHashMap<>();
            for (int i = 0; i < 2; i++) {
                Map.Entry<String, Process> tm = c.startTaskManager();
                taskManagers.put(tm.getKey(), tm.getValue());
            }
            c.awaitTaskManagers(2, 4, STEP);

            // 1. flink run, records flowing, one TaskManager SIGKILLed once predictions are committed.
            String job1 = c.submit(jar, "flink-run-1", jobArgs(kafka, 1, golden));
            StandaloneFlinkCluster.await("job 1's tasks running", STEP, () -> c.allTasksRunning(job1));
            Map<String, Integer> produced = new ConcurrentHashMap<>();
            Map<String, Integer> malformed = new ConcurrentHashMap<>();
            CompletableFuture<Void> producing = CompletableFuture.runAsync(() -> produce(kafka, produced, malformed));
            List<ConsumerRecord<String, String>> seen = new ArrayList<>();
            String killed = null;
            try (KafkaConsumer<String, String> reader = kafka.committedReader("sc-out-1")) {
                long deadline = System.nanoTime() + Duration.ofSeconds(75).toNanos();
                while (seen.size() < RECORDS && System.nanoTime() < deadline) {
                    reader.poll(Duration.ofMillis(200)).forEach(seen::add);
                    if (killed == null && seen.size() >= 200) {
                        assertThat(seen.size())
                                .as("killed before the end of the stream")
                                .isLessThan(RECORDS);
                        killed = taskManagerOfSubtaskZero(c, job1);
                        Process victim = taskManagers.remove(killed);
                        victim.destroyForcibly(); // SIGKILL: no shutdown hook, no goodbye to the JobManager
                        assertThat(victim.waitFor(30, TimeUnit.SECONDS)).isTrue();
                        Map.Entry<String, Process> replacement = c.startTaskManager();
                        taskManagers.put(replacement.getKey(), replacement.getValue());
                    }
                }
                reader.poll(Duration.ofSeconds(1)).forEach(seen::add); // anything beyond RECORDS: a duplicate
            } finally {
                producing.get(1, TimeUnit.MINUTES);
            }
            assertThat(killed).as("a TaskManager was killed mid-stream").isNotNull();
            List<String> predictedOffsets = new ArrayList<>();
            for (ConsumerRecord<String, String> r : seen) {
                JsonNode p = JSON.readTree(r.value());
                predictedOffsets.add(p.get("inputPartition").asInt() + "@"
                        + p.get("inputOffset").asLong());
            }
            assertThat(produced).hasSize(RECORDS);
            assertThat(malformed).hasSize(MALFORMED);
            assertThat(predictedOffsets)
                    .as("read_committed: one prediction per input offset, none missing, none twice")
                    .doesNotHaveDuplicates()
                    .containsExactlyInAnyOrderElementsOf(produced.keySet());

            // The job recovered in the same TaskManager JVMs: each TaskManager holds one session per slot of
            // the scoring operator, none left over from the failed attempt, in the job's metrics and in the
            // TaskManager's own (flinkonnx.open_sessions: every session open in that TaskManager process).
            c.awaitTaskManagers(2, 4, STEP);
            StandaloneFlinkCluster.await("job 1's tasks running after recovery", STEP, () -> c.allTasksRunning(job1));
            Map<String, Integer> job1Slots = assertOneSessionPerSlot(c, job1);
            awaitTaskManagerSessions(c, taskManagers.keySet(), job1Slots);
            c.cancel(job1, STEP);
            // The job's metrics leave REST with it; the TaskManagers' stay, and show its sessions closed.
            awaitTaskManagerSessions(c, taskManagers.keySet(), zeros(job1Slots.keySet()));

            // 2. The same jar again: ORT is parent-first, so its JNI library loaded once per TaskManager serves
            //    the second job's class loader too, and that class loader counts into the same TaskManager metric.
            String job2 = c.submit(jar, "flink-run-2", jobArgs(kafka, 2, golden));
            assertThat(kafka.readCommitted("sc-out-2", RECORDS))
                    .as("the resubmitted job's predictions")
                    .hasSize(RECORDS);
            Map<String, Integer> job2Slots = assertOneSessionPerSlot(c, job2);
            awaitTaskManagerSessions(c, taskManagers.keySet(), job2Slots);
            // While it runs: the library's metrics in Prometheus, and every metric the Grafana dashboard queries.
            assertPrometheusMetrics(c, job2, taskManagers.keySet());
            c.cancel(job2, STEP);

            // After the cancel, every session either job opened is closed again (the scheduler may have put
            // every slot of a job on one TaskManager: the others may never have registered the metric).
            Set<String> hosts = new HashSet<>(job1Slots.keySet());
            hosts.addAll(job2Slots.keySet());
            awaitTaskManagerSessions(c, taskManagers.keySet(), zeros(hosts));
            for (String tm : taskManagers.keySet()) {
                assertThat(Files.readString(c.log(tm)))
                        .as(tm + "'s log")
                        .doesNotContain("UnsatisfiedLinkError")
                        .doesNotContain("ClassCastException");
            }
        }
        assertThat(cluster.alive()).as("processes left after close").isEmpty();
    }

    private static List<String> jobArgs(TestKafka kafka, int submission, Path golden) {
        return List.of(
                "--batch.max-size=" + MAX_BATCH,
                "--drift.golden-vectors=" + golden.toAbsolutePath(),
                "--bootstrap.servers=" + kafka.bootstrapServers(),
                "--topic.input=sc-in",
                "--topic.output=sc-out-" + submission,
                "--topic.dead-letters=sc-dead",
                "--topic.fallback-reports=sc-fallback",
                "--topic.drift-reports=sc-drift",
                "--group.id=sc-" + submission,
                "--transactional-id-prefix=sc-" + submission,
                "--checkpoint.interval-ms=1000",
                "--parallelism=" + PARALLELISM);
    }

    /**
     * RECORDS transactions at a steady pace (so the kill lands mid-stream), their offsets into {@code offsets}, and
     * MALFORMED messages between them (not JSON, no id, too few features), their offsets into {@code malformed}.
     */
    private static void produce(TestKafka kafka, Map<String, Integer> offsets, Map<String, Integer> malformed) {
        SplittableRandom random = new SplittableRandom(16);
        try (KafkaProducer<String, String> producer = kafka.producer()) {
            for (int i = 0; i < RECORDS; i++) {
                String id = "t-" + i;
                int index = i;
                producer.send(
                        new ProducerRecord<>("sc-in", id, FraudFeatures.toJson(id, FraudFeatures.draw(random))),
                        (RecordMetadata m, Exception e) -> {
                            if (e == null) {
                                offsets.put(m.partition() + "@" + m.offset(), index);
                            }
                        });
                if (i % (RECORDS / MALFORMED) == 100) {
                    String bad = List.of(
                                    "not json",
                                    "{\"features\": [1, 2, 3, 4, 5, 6, 7, 8]}",
                                    "{\"id\": \"bad\", \"features\": [1, 2]}")
                            .get(i / (RECORDS / MALFORMED) % 3);
                    producer.send(new ProducerRecord<>("sc-in", "bad-" + i, bad), (RecordMetadata m, Exception e) -> {
                        if (e == null) {
                            malformed.put(m.partition() + "@" + m.offset(), index);
                        }
                    });
                }
                if (i % 50 == 49) {
                    producer.flush();
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
                }
            }
        }
    }

    /** The scoring vertex (the one whose subtasks report {@code open_sessions}) and that metric's id. */
    private static Map.Entry<String, String> scoringVertex(StandaloneFlinkCluster c, String jobId) {
        AtomicReference<Map.Entry<String, String>> found = new AtomicReference<>();
        StandaloneFlinkCluster.await("the open_sessions gauge in the REST API", STEP, () -> {
            JsonNode job = c.getOrNull("/jobs/" + jobId);
            if (job == null) {
                return false;
            }
            for (JsonNode v : job.path("vertices")) {
                String vid = v.path("id").asText();
                JsonNode metrics = c.getOrNull("/jobs/" + jobId + "/vertices/" + vid + "/subtasks/0/metrics");
                if (metrics == null) {
                    continue;
                }
                for (JsonNode m : metrics) {
                    if (m.path("id").asText().endsWith(".onnx.open_sessions")) {
                        found.set(Map.entry(vid, m.path("id").asText()));
                        return true;
                    }
                }
            }
            return false;
        });
        return found.get();
    }

    private static String taskManagerOfSubtaskZero(StandaloneFlinkCluster c, String jobId) {
        String vertex = scoringVertex(c, jobId).getKey();
        JsonNode v = c.getOrNull("/jobs/" + jobId + "/vertices/" + vertex);
        return v.path("subtasks").get(0).path("taskmanager-id").asText();
    }

    /**
     * Reads each scoring subtask's {@code open_sessions} gauge through the REST metrics API until each equals
     * the number of scoring subtasks on its TaskManager (one session per slot, in that TaskManager's class
     * loader of the job): a session leaked by an earlier attempt would keep it above that. Returns the number
     * of scoring subtasks per TaskManager.
     */
    private static Map<String, Integer> assertOneSessionPerSlot(StandaloneFlinkCluster c, String jobId) {
        Map.Entry<String, String> vertex = scoringVertex(c, jobId);
        String base = "/jobs/" + jobId + "/vertices/" + vertex.getKey();
        AtomicReference<String> last = new AtomicReference<>();
        AtomicReference<Map<String, Integer>> placement = new AtomicReference<>();
        try {
            StandaloneFlinkCluster.await("open_sessions = scoring subtasks per TaskManager", STEP, () -> {
                JsonNode v = c.getOrNull(base);
                if (v == null) {
                    return false;
                }
                Map<String, Integer> subtasksPerTm = new HashMap<>();
                List<String> tms = new ArrayList<>();
                for (JsonNode s : v.path("subtasks")) {
                    String tm = s.path("taskmanager-id").asText();
                    tms.add(tm);
                    subtasksPerTm.merge(tm, 1, Integer::sum);
                }
                Map<String, String> observed = new LinkedHashMap<>();
                boolean ok = !tms.isEmpty();
                for (int i = 0; i < tms.size(); i++) {
                    JsonNode m = c.getOrNull(base + "/subtasks/" + i + "/metrics?get=" + vertex.getValue());
                    String value = m == null || m.isEmpty()
                            ? null
                            : m.get(0).path("value").asText();
                    observed.put("subtask " + i + " on " + tms.get(i), value);
                    ok &= String.valueOf(subtasksPerTm.get(tms.get(i))).equals(value);
                }
                last.set(observed.toString());
                placement.set(subtasksPerTm);
                return ok;
            });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; last read: " + last.get(), e);
        }
        return placement.get();
    }

    /**
     * Reads {@code flinkonnx.open_sessions} of each live TaskManager through the REST metrics API ({@code
     * /taskmanagers/ID/metrics}) until each equals {@code expected}'s value for it, or 0 where it has none. A
     * TaskManager in {@code expected} must have the metric; one that never ran a scoring operator may lack it.
     */
    private static void awaitTaskManagerSessions(
            StandaloneFlinkCluster c, Collection<String> live, Map<String, Integer> expected) {
        AtomicReference<Map<String, String>> last = new AtomicReference<>();
        try {
            StandaloneFlinkCluster.await("flinkonnx.open_sessions per TaskManager = " + expected, STEP, () -> {
                Map<String, String> observed = new LinkedHashMap<>();
                boolean ok = true;
                for (String tm : live) {
                    JsonNode m = c.getOrNull("/taskmanagers/" + tm + "/metrics?get=flinkonnx.open_sessions");
                    String value = m == null || m.isEmpty()
                            ? null
                            : m.get(0).path("value").asText();
                    observed.put(tm, value);
                    ok &= value == null
                            ? !expected.containsKey(tm)
                            : value.equals(String.valueOf(expected.getOrDefault(tm, 0)));
                }
                last.set(observed);
                return ok;
            });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; last read: " + last.get(), e);
        }
    }

    private static Map<String, Integer> zeros(Collection<String> taskManagers) {
        Map<String, Integer> zeros = new LinkedHashMap<>();
        taskManagers.forEach(tm -> zeros.put(tm, 0));
        return zeros;
    }

    /** The bundled model's golden vectors (input and expected output, from the examples jar) in {@code dir}. */
    private static Path goldenVectors(Path dir) throws IOException {
        StandaloneFlinkCluster.deleteRecursively(dir);
        Path set = Files.createDirectories(dir.resolve("test_data_set_0"));
        for (String f : List.of("input_0.pb", "output_0.pb")) {
            try (InputStream in =
                    FraudFeatures.class.getResourceAsStream("/models/fraud-mlp-golden/test_data_set_0/" + f)) {
                assertThat(in).as(f).isNotNull();
                Files.copy(in, set.resolve(f));
            }
        }
        return dir;
    }

    /** Samples of job {@code jobId}. */
    private static Predicate<PrometheusScrape.Sample> ofJob(String jobId) {
        return s -> jobId.equals(s.label("job_id"));
    }

    private static Predicate<PrometheusScrape.Sample> ofJob(String jobId, String quantile) {
        return s -> jobId.equals(s.label("job_id")) && quantile.equals(s.label("quantile"));
    }

    /**
     * Scrapes the Prometheus endpoint of every live TaskManager (and the JobManager's) until the job's scoring
     * subtasks together report every record scored and every malformed one as a dead letter, then checks the
     * values of the other metrics, that every library metric found is in docs/metrics.md, and that every metric
     * the Grafana dashboard queries is in the scrape.
     */
    private static void assertPrometheusMetrics(StandaloneFlinkCluster c, String jobId, Collection<String> live)
            throws IOException {
        Map<String, Integer> ports = new LinkedHashMap<>();
        live.forEach(tm -> ports.put(tm, c.prometheusPort(tm)));
        ports.put("jobmanager", c.prometheusPort("jobmanager"));
        AtomicReference<PrometheusScrape> scraped = new AtomicReference<>();
        AtomicReference<String> last = new AtomicReference<>();
        try {
            StandaloneFlinkCluster.await(
                    "Prometheus: num_inferences = " + RECORDS + " and failed_records = " + MALFORMED + " over job "
                            + jobId + "'s scoring subtasks",
                    STEP,
                    () -> {
                        PrometheusScrape s = PrometheusScrape.of(ports);
                        scraped.set(s);
                        List<PrometheusScrape.Sample> inferences = s.get(OP + "num_inferences", ofJob(jobId));
                        List<PrometheusScrape.Sample> dead = s.get(OP + "failed_records", ofJob(jobId));
                        last.set(s + " from " + ports + ": num_inferences " + inferences + ", failed_records " + dead);
                        return inferences.size() == PARALLELISM
                                && PrometheusScrape.sum(inferences) == RECORDS
                                && PrometheusScrape.sum(dead) == MALFORMED;
                    });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; last scrape: " + last.get(), e);
        }
        PrometheusScrape s = scraped.get();

        // What each endpoint served, for whoever reads a failure below.
        for (Map.Entry<String, Integer> p : ports.entrySet()) {
            String text = PrometheusScrape.fetch(p.getValue());
            Files.writeString(c.log("prometheus-" + p.getKey()), text == null ? "(no answer)" : text);
        }

        // Batching: every batch between 1 record and the maximum (Flink 2.3's summaries: quantiles 0.5 to 0.999 of
        // the last 500 batches); latency and queue time measured.
        List<PrometheusScrape.Sample> sizes = s.get(OP + "inference_request_batch_size", ofJob(jobId));
        assertThat(sizes)
                .as("batch size quantiles of the %s scoring subtasks", PARALLELISM)
                .hasSize(PARALLELISM * 6)
                .allSatisfy(x -> assertThat(x.value()).as(x.toString()).isBetween(1.0, (double) MAX_BATCH));
        double batches = PrometheusScrape.sum(s.get(OP + "num_batches", ofJob(jobId)));
        assertThat(batches)
                .as("num_batches")
                .isBetween(Math.ceil((double) RECORDS / MAX_BATCH), (double) RECORDS + MALFORMED);
        assertThat(PrometheusScrape.sum(s.get(OP + "inference_request_batch_size_count", ofJob(jobId))))
                .as("batch sizes recorded")
                .isPositive();
        assertThat(s.get(OP + "inference_batch_latency_micro_secs", ofJob(jobId, "0.5")))
                .hasSize(PARALLELISM)
                .allSatisfy(x ->
                        assertThat(x.value()).as("median batch latency, µs").isPositive());
        assertThat(s.get(OP + "queue_time_micro_secs", ofJob(jobId, "0.99")))
                .hasSize(PARALLELISM)
                .allSatisfy(
                        x -> assertThat(x.value()).as("longest queue time, µs").isNotNegative());
        assertThat(PrometheusScrape.sum(s.get(OP + "failed_batches_counter", ofJob(jobId))))
                .isZero();

        // Sessions: one per scoring slot, in the job's metrics and in the TaskManagers'.
        assertThat(s.get(OP + "open_sessions", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> assertThat(x.value()).isGreaterThanOrEqualTo(1));
        assertThat(PrometheusScrape.sum(s.get(MetricsReference.TASK_MANAGER_PREFIX + "open_sessions", x -> true)))
                .as("flinkonnx.open_sessions over the TaskManagers")
                .isEqualTo(PARALLELISM);
        assertThat(s.get(OP + "load_model_latency_milli_secs", ofJob(jobId)))
                .allSatisfy(x -> assertThat(x.value()).isPositive());
        assertThat(s.get(OP + "model_byte_size", ofJob(jobId))).allSatisfy(x -> assertThat(x.value())
                .isEqualTo((double) Files.size(Path.of("../examples/src/main/resources/models/fraud-mlp.onnx"))));

        // The version serving, as a label (the bundled model's file name).
        assertThat(s.get(OP + "version_model_info", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> {
                    assertThat(x.label("version")).isEqualTo("fraud-mlp");
                    assertThat(x.value()).isEqualTo(1.0);
                });

        // Fallback: cpu was asked for, so every node runs on it; drift: the golden vectors match.
        assertThat(s.get(OP + "nodes_on_cpu", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> assertThat(x.value()).isGreaterThanOrEqualTo(1));
        assertThat(s.get(OP + "cpu_time_fraction", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> assertThat(x.value()).isGreaterThan(0).isLessThanOrEqualTo(1));
        assertThat(s.get(OP + "drift_flagged", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> assertThat(x.value()).isZero());
        assertThat(s.get(OP + "drift_max_abs_error", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> assertThat(x.value()).isBetween(0.0, 1e-4));
        assertThat(s.get(OP + "drift_fraction_outside", ofJob(jobId)))
                .hasSize(PARALLELISM)
                .allSatisfy(x -> assertThat(x.value()).isZero());
        assertThat(s.get(OP + "drift_max_rel_error", ofJob(jobId))).hasSize(PARALLELISM);
        assertThat(s.get("flink_jobmanager_job_uptime", ofJob(jobId)))
                .singleElement()
                .satisfies(x -> assertThat(x.value()).isPositive());

        // Every library metric scraped is documented; every metric the dashboard queries exists.
        Set<String> documented = MetricsReference.prometheusNames();
        Set<String> undocumented = new TreeSet<>();
        for (String name : s.names()) {
            if ((name.startsWith(OP) || name.startsWith(MetricsReference.TASK_MANAGER_PREFIX))
                    && MetricsReference.documentedNameOf(name, documented) == null) {
                undocumented.add(name);
            }
        }
        assertThat(undocumented)
                .as("library metrics in the scrape but not in docs/metrics.md")
                .isEmpty();
        Set<String> missing = new TreeSet<>(PromQl.dashboardMetricNames(GrafanaDashboardTest.DASHBOARD));
        missing.removeAll(s.names());
        assertThat(missing)
                .as("metrics the Grafana dashboard queries that a real scrape lacks (scraped: %s)", s.names())
                .isEmpty();
        // ... and every fixed label value a panel selects on (a quantile the reporter does not serve shows nothing)
        for (PromQl.Selector selector : PromQl.dashboardSelectors(GrafanaDashboardTest.DASHBOARD)) {
            assertThat(s.get(selector.name(), x -> x.labels()
                            .entrySet()
                            .containsAll(selector.equalLabels().entrySet())))
                    .as("samples of the dashboard's selector %s", selector)
                    .isNotEmpty();
        }
    }
}
