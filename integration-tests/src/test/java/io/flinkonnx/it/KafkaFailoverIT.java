package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.examples.KafkaScoringJob;
import io.flinkonnx.examples.ScoringJobConfig;
import io.flinkonnx.testing.FlinkClusters;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.TaskManagerOptions;
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

/**
 * A TaskManager killed mid-stream under checkpointing: read_committed shows exactly one prediction per
 * input offset, none missing.
 */
class KafkaFailoverIT {
    private static final int RECORDS = 3_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo(spreadOverBothTaskManagers());

    /** Slots spread evenly, so that each TaskManager runs a subtask and killing one always hits the job. */
    private static Configuration spreadOverBothTaskManagers() {
        Configuration conf = new Configuration();
        conf.set(
                TaskManagerOptions.TASK_MANAGER_LOAD_BALANCE_MODE, TaskManagerOptions.TaskManagerLoadBalanceMode.SLOTS);
        return conf;
    }

    @Test
    void killingATaskManagerMidStreamLosesAndDuplicatesNothing(@InjectMiniCluster MiniCluster cluster)
            throws Exception {
        try (TestKafka kafka = TestKafka.start()) {
            kafka.createTopics(2, "fo-in", "fo-out", "fo-dead", "fo-fallback", "fo-drift");
            Configuration conf = new Configuration();
            conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
            conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 5);
            conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(200));
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
            KafkaScoringJob.build(
                    env,
                    ScoringJobConfig.defaults()
                            .with("bootstrap.servers", kafka.bootstrapServers())
                            .with("topic.input", "fo-in")
                            .with("topic.output", "fo-out")
                            .with("topic.dead-letters", "fo-dead")
                            .with("topic.fallback-reports", "fo-fallback")
                            .with("topic.drift-reports", "fo-drift")
                            .with("group.id", "fo")
                            .with("transactional-id-prefix", "fo")
                            .with("checkpoint.interval-ms", "300")
                            .with("parallelism", "2"));
            JobClient job = env.executeAsync("kafka failover");

            // Produce at a steady pace in the background, so the kill lands while records flow.
            CompletableFuture<Void> producing = CompletableFuture.runAsync(() -> {
                SplittableRandom random = new SplittableRandom(11);
                try (KafkaProducer<String, String> producer = kafka.producer()) {
                    for (int i = 0; i < RECORDS; i++) {
                        producer.send(new ProducerRecord<>(
                                "fo-in", "t-" + i, FraudFeatures.toJson("t-" + i, FraudFeatures.draw(random))));
                        if (i % 50 == 49) {
                            producer.flush();
                            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
                        }
                    }
                }
            });

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
