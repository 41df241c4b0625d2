package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.examples.KafkaScoringJob;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Kafka job promotes a new model version from one message on its model-updates topic, mid-stream; a
 * TaskManager is then killed. read_committed shows one prediction per input offset, and each prediction
 * equals the reference of the version it names.
 */
class KafkaModelUpdateIT {
    private static final int RECORDS = 3_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo(FailoverJobs.spreadOverBothTaskManagers());

    @TempDir
    Path dir;

    @Test
    void aModelUpdateMessageSwapsTheVersionAndAFailoverAfterItKeepsExactlyOnePredictionPerInput(
            @InjectMiniCluster MiniCluster cluster) throws Exception {
        Path v2 = dir.resolve("v2/model.onnx");
        Files.createDirectories(v2.getParent());
        Files.write(v2, FraudReference.secondVersion().toByteArray());
        String v2Sha =
                HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(v2)));
        Map<String, FraudReference> references =
                Map.of("fraud-mlp", FraudReference.load(), "v2", FraudReference.of(FraudReference.secondVersion()));

        try (TestKafka kafka = TestKafka.start()) {
            kafka.createTopics(2, "mu-reports");
            kafka.createTopics(1, "mu-updates");
            StreamExecutionEnvironment env = FailoverJobs.restartingEnvironment();
            KafkaScoringJob.build(
                    env,
                    FailoverJobs.jobConfig(kafka, "mu")
                            .with("topic.model-updates", "mu-updates")
                            .with("topic.model-update-reports", "mu-reports"));
            JobClient job = env.executeAsync("kafka model update");

            Map<String, float[]> features = new HashMap<>();
            SplittableRandom random = new SplittableRandom(17);
            for (int i = 0; i < RECORDS; i++) {
                features.put("t-" + i, FraudFeatures.draw(random));
            }
            CompletableFuture<Void> producing =
                    FailoverJobs.producePaced(kafka, "mu-in", RECORDS, i -> features.get("t-" + i));

            List<JsonNode> seen = new ArrayList<>();
            boolean updated = false;
            boolean killed = false;
            try (KafkaConsumer<String, String> reader = kafka.committedReader("mu-out")) {
                long deadline = System.nanoTime() + Duration.ofMinutes(3).toNanos();
                while (seen.size() < RECORDS && System.nanoTime() < deadline) {
                    for (ConsumerRecord<String, String> r : reader.poll(Duration.ofMillis(200))) {
                        seen.add(JSON.readTree(r.value()));
                    }
                    if (!updated && seen.size() >= 300) {
                        try (KafkaProducer<String, String> producer = kafka.producer()) {
                            producer.send(new ProducerRecord<>(
                                            "mu-updates",
                                            "fraud",
                                            "{\"uri\": \"" + v2.toUri() + "\", \"sha256\": \"" + v2Sha
                                                    + "\", \"version\": \"v2\"}"))
                                    .get(30, TimeUnit.SECONDS);
                        }
                        updated = true;
                    }
                    boolean v2Committed = seen.stream()
                            .anyMatch(p -> p.path("modelVersion").asText().equals("v2"));
                    if (updated && !killed && v2Committed) {
                        assertThat(seen.size())
                                .as("killed before the end of the stream")
                                .isLessThan(RECORDS);
                        cluster.terminateTaskManager(0).get(30, TimeUnit.SECONDS);
                        killed = true;
                    }
                }
                reader.poll(Duration.ofSeconds(1)).forEach(r -> {
                    try {
                        seen.add(JSON.readTree(r.value()));
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
            } finally {
                producing.get(1, TimeUnit.MINUTES);
                job.cancel().get(30, TimeUnit.SECONDS);
            }

            assertThat(killed).as("a TaskManager was killed after the swap").isTrue();
            assertThat(seen).as("predictions read_committed").hasSize(RECORDS);
            Map<String, Integer> byVersion = new HashMap<>();
            java.util.Set<String> offsets = new java.util.HashSet<>();
            for (JsonNode p : seen) {
                offsets.add(p.get("inputPartition").asInt() + "@"
                        + p.get("inputOffset").asLong());
                String version = p.get("modelVersion").asText();
                byVersion.merge(version, 1, Integer::sum);
                assertThat(references).containsKey(version);
                float[] expected = references
                        .get(version)
                        .probabilities(features.get(p.get("key").asText()));
                assertThat((float) p.get("probabilities").get(1).asDouble())
                        .as("%s scored by %s", p.get("key").asText(), version)
                        .isCloseTo(expected[1], within(1e-5f));
                if (version.equals("v2")) {
                    assertThat(p.get("modelSha256").asText()).isEqualTo(v2Sha);
                }
            }
            assertThat(offsets).as("distinct input offsets").hasSize(RECORDS);
            assertThat(byVersion).containsKeys("fraud-mlp", "v2");

            // The update's reports: promoted on both subtasks, then after the failover each restored v2 (the
            // checkpoint named it) rather than the job's first model.
            List<JsonNode> reports = new ArrayList<>();
            try (KafkaConsumer<String, String> reader = kafka.committedReader("mu-reports")) {
                long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
                while (System.nanoTime() < deadline
                        && reports.stream()
                                        .filter(r -> r.get("outcome").asText().equals("RESTORED"))
                                        .count()
                                < 2) {
                    for (ConsumerRecord<String, String> r : reader.poll(Duration.ofMillis(200))) {
                        reports.add(JSON.readTree(r.value()));
                    }
                }
            }
            assertThat(reports)
                    .filteredOn(r -> r.get("outcome").asText().equals("PROMOTED"))
                    .extracting(r -> r.get("version").asText())
                    .containsOnly("v2")
                    .hasSizeGreaterThanOrEqualTo(2);
            assertThat(reports)
                    .filteredOn(r -> r.get("outcome").asText().equals("RESTORED"))
                    .extracting(r -> r.get("version").asText())
                    .containsOnly("v2")
                    .hasSize(2);
        }
    }
}
