package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.examples.KafkaScoringJob;
import io.flinkonnx.testing.FlinkClusters;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A TaskManager killed mid-stream under checkpointing: read_committed shows exactly one prediction per
 * input offset, none missing.
 */
class KafkaFailoverIT {
    private static final int RECORDS = 3_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo(FailoverJobs.spreadOverBothTaskManagers());

    @Test
    void killingATaskManagerMidStreamLosesAndDuplicatesNothing(@InjectMiniCluster MiniCluster cluster)
            throws Exception {
        try (TestKafka kafka = TestKafka.start()) {
            StreamExecutionEnvironment env = FailoverJobs.restartingEnvironment();
            KafkaScoringJob.build(env, FailoverJobs.jobConfig(kafka, "fo"));
            JobClient job = env.executeAsync("kafka failover");
            SplittableRandom random = new SplittableRandom(11);
            CompletableFuture<Void> producing =
                    FailoverJobs.producePaced(kafka, "fo-in", RECORDS, i -> FraudFeatures.draw(random));

            List<ConsumerRecord<String, String>> seen = new ArrayList<>();
            boolean killed = false;
            try (KafkaConsumer<String, String> reader = kafka.committedReader("fo-out")) {
                long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
                while (seen.size() < RECORDS && System.nanoTime() < deadline) {
                    reader.poll(Duration.ofMillis(200)).forEach(seen::add);
                    if (!killed && seen.size() >= 300) {
                        // Committed predictions exist, so at least one checkpoint completed: kill mid-stream.
                        assertThat(seen.size())
                                .as("killed before the end of the stream")
                                .isLessThan(RECORDS);
                        cluster.terminateTaskManager(0).get(30, TimeUnit.SECONDS);
                        killed = true;
                    }
                }
                reader.poll(Duration.ofSeconds(1)).forEach(seen::add);
            } finally {
                producing.get(1, TimeUnit.MINUTES);
                job.cancel().get(30, TimeUnit.SECONDS);
            }

            assertThat(killed).isTrue();
            Set<String> offsets = new HashSet<>();
            Set<String> keys = new HashSet<>();
            for (ConsumerRecord<String, String> r : seen) {
                JsonNode p = JSON.readTree(r.value());
                offsets.add(p.get("inputPartition").asInt() + "@"
                        + p.get("inputOffset").asLong());
                keys.add(r.key());
            }
            assertThat(seen).as("predictions read_committed").hasSize(RECORDS);
            assertThat(offsets).as("distinct input offsets").hasSize(RECORDS);
            assertThat(keys).hasSize(RECORDS);
        }
    }
}
