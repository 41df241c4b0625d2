package io.flinkonnx.it;

import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.examples.ScoringJobConfig;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

/** What the Kafka failover tests share: the cluster, the restarting job, its topics, a paced producer. */
final class FailoverJobs {
    private FailoverJobs() {}

    /** Slots spread evenly, so that each TaskManager runs a subtask and killing one always hits the job. */
    static Configuration spreadOverBothTaskManagers() {
        Configuration conf = new Configuration();
        conf.set(
                TaskManagerOptions.TASK_MANAGER_LOAD_BALANCE_MODE, TaskManagerOptions.TaskManagerLoadBalanceMode.SLOTS);
        return conf;
    }

    /** An environment whose job restarts (5 times, 200 ms apart) after a TaskManager is lost. */
    static StreamExecutionEnvironment restartingEnvironment() {
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 5);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(200));
        return StreamExecutionEnvironment.getExecutionEnvironment(conf);
    }

    /**
     * The Kafka job on topics {@code <prefix>-in, -out, -dead, -fallback, -drift} (created here, 2 partitions),
     * parallelism 2, a checkpoint every 300 ms.
     */
    static ScoringJobConfig jobConfig(TestKafka kafka, String prefix) throws Exception {
        kafka.createTopics(
                2, prefix + "-in", prefix + "-out", prefix + "-dead", prefix + "-fallback", prefix + "-drift");
        return ScoringJobConfig.defaults()
                .with("bootstrap.servers", kafka.bootstrapServers())
                .with("topic.input", prefix + "-in")
                .with("topic.output", prefix + "-out")
                .with("topic.dead-letters", prefix + "-dead")
                .with("topic.fallback-reports", prefix + "-fallback")
                .with("topic.drift-reports", prefix + "-drift")
                .with("group.id", prefix)
                .with("transactional-id-prefix", prefix)
                .with("checkpoint.interval-ms", "300")
                .with("parallelism", "2");
    }

    /**
     * Produces transactions {@code t-0 .. t-(records-1)} with {@code features.apply(i)} in the background, 50
     * every 100 ms, so that a kill lands while records flow.
     */
    static CompletableFuture<Void> producePaced(
            TestKafka kafka, String topic, int records, IntFunction<float[]> features) {
        return CompletableFuture.runAsync(() -> {
            try (KafkaProducer<String, String> producer = kafka.producer()) {
                for (int i = 0; i < records; i++) {
                    producer.send(
                            new ProducerRecord<>(topic, "t-" + i, FraudFeatures.toJson("t-" + i, features.apply(i))));
                    if (i % 50 == 49) {
                        producer.flush();
                        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
                    }
                }
            }
        });
    }
}
