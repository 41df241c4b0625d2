package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.examples.KafkaScoringJob;
import io.flinkonnx.examples.ScoringJobConfig;
import io.flinkonnx.flink.SessionStats;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The job built as a real job jar and submitted twice to one MiniCluster ({@code pipeline.jars}), with
 * ORT on the parent class path and {@code classloader.parent-first-patterns.additional: ai.onnxruntime.}:
 * the second submission runs (ORT's JNI library is loaded once, by the parent loader).
 */
class JobJarResubmissionIT {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .setConfiguration(parentFirstOrt())
            .build());

    private static Configuration parentFirstOrt() {
        Configuration c = new Configuration();
        // ai.onnxruntime.: what the README asks of every cluster. org.apache.kafka.: only because this test
        // JVM has the Kafka connector on its class path, and Flink always loads org.apache.flink.* (the
        // connector included) parent-first, so its Kafka client must come from the same loader.
        c.set(
                CoreOptions.ALWAYS_PARENT_FIRST_LOADER_PATTERNS_ADDITIONAL,
                List.of("ai.onnxruntime.", "org.apache.kafka."));
        return c;
    }

    @Test
    void theSameJobJarRunsTwiceInOneCluster() throws Exception {
        Path jar = Path.of(System.getProperty("job.jar", "../examples/target/examples-0.1.0-SNAPSHOT-job.jar"));
        assertThat(jar).as("the job jar built by the examples module").exists();
        try (TestKafka kafka = TestKafka.start()) {
            kafka.createTopics(2, "rs-in", "rs-dead", "rs-fallback", "rs-drift");
            SplittableRandom random = new SplittableRandom(3);
            try (KafkaProducer<String, String> producer = kafka.producer()) {
                for (int i = 0; i < 200; i++) {
                    producer.send(new ProducerRecord<>(
                            "rs-in", "t-" + i, FraudFeatures.toJson("t-" + i, FraudFeatures.draw(random))));
                }
            }
            long sessionsOfThisLoader = SessionStats.created();
            for (int submission = 1; submission <= 2; submission++) {
                String out = "rs-out-" + submission;
                kafka.createTopics(2, out);
                Configuration conf = new Configuration();
                conf.set(PipelineOptions.JARS, List.of(jar.toUri().toURL().toString()));
                StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
                KafkaScoringJob.build(
                        env,
                        ScoringJobConfig.defaults()
                                .with("bootstrap.servers", kafka.bootstrapServers())
                                .with("topic.input", "rs-in")
                                .with("topic.output", out)
                                .with("topic.dead-letters", "rs-dead")
                                .with("topic.fallback-reports", "rs-fallback")
                                .with("topic.drift-reports", "rs-drift")
                                .with("group.id", "rs-" + submission)
                                .with("transactional-id-prefix", "rs-" + submission)
                                .with("checkpoint.interval-ms", "200")
                                .with("bounded", "true"));
                env.execute("job jar submission " + submission);
                assertThat(kafka.readCommitted(out, 200))
                        .as("predictions of submission %d", submission)
                        .hasSize(200);
            }
            // The scoring ran on the job jar's copy of the library (child-first), not on this class loader's.
            assertThat(SessionStats.created()).isEqualTo(sessionsOfThisLoader);
            assertThat(Files.size(jar)).isPositive();
        }
    }
}
