package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.examples.FraudFeatures;
import io.flinkonnx.flink.SessionStats;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobID;
import org.apache.flink.client.program.ClusterClient;
import org.apache.flink.client.program.PackagedProgram;
import org.apache.flink.client.program.PackagedProgramUtils;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.test.junit5.InjectClusterClient;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The job jar submitted twice to one MiniCluster as {@code flink run} does (its main class run in the jar's own
 * child-first class loader to build the job graph, the jar shipped with it), with ORT on the parent class path and
 * {@code classloader.parent-first-patterns.additional: ai.onnxruntime.}: the second submission runs (ORT's JNI
 * library is loaded once, by the parent loader). The parent class path also has the plain Kafka connector (this
 * test JVM's): the job jar's relocated one does not meet it.
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
        // what the README asks of every cluster
        c.set(CoreOptions.ALWAYS_PARENT_FIRST_LOADER_PATTERNS_ADDITIONAL, List.of("ai.onnxruntime."));
        return c;
    }

    @Test
    void theSameJobJarRunsTwiceInOneCluster(@InjectClusterClient ClusterClient<?> client) throws Exception {
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
                JobGraph graph;
                try (PackagedProgram program = PackagedProgram.newBuilder()
                        .setJarFile(jar.toFile())
                        .setConfiguration(parentFirstOrt())
                        .setArguments(
                                "--bootstrap.servers=" + kafka.bootstrapServers(),
                                "--topic.input=rs-in",
                                "--topic.output=" + out,
                                "--topic.dead-letters=rs-dead",
                                "--topic.fallback-reports=rs-fallback",
                                "--topic.drift-reports=rs-drift",
                                "--group.id=rs-" + submission,
                                "--transactional-id-prefix=rs-" + submission,
                                "--checkpoint.interval-ms=200",
                                "--bounded=true")
                        .build()) {
                    graph = PackagedProgramUtils.createJobGraph(program, parentFirstOrt(), 2, true);
                }
                assertThat(graph.getUserJars())
                        .as("the job jar travels with the job")
                        .hasSize(1);
                JobID id = client.submitJob(graph).get(1, TimeUnit.MINUTES);
                JobResult result = client.requestJobResult(id).get(2, TimeUnit.MINUTES);
                assertThat(result.getSerializedThrowable())
                        .as("submission %d's failure", submission)
                        .isEmpty();
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
