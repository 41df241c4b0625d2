package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import io.flinkonnx.flink.text.testing.TextReference;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The text example end to end: a real KRaft broker, a MiniCluster, the bundled model and tokenizer. Every message
 * gives exactly one committed output (an embedding, or a dead letter for the bad ones) across a failure injected
 * after the first half was committed, and each embedding equals the independent reference ({@link TextReference}:
 * DJL's tokenizer used directly, a plain ORT session on one text at a time, pooling written out).
 */
class TextEmbeddingJobTest {
    private static final int FIRST_HALF = 1_000;
    private static final int RECORDS = 2_000;

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());

    private static EmbeddedKafka kafka;

    @TempDir
    static Path dir;

    @BeforeAll
    static void startKafka() throws Exception {
        kafka = EmbeddedKafka.start();
    }

    @AfterAll
    static void stopKafka() {
        if (kafka != null) {
            kafka.close();
        }
    }

    @Test
    void everyMessageGivesExactlyOneCommittedEmbeddingEqualToTheReferenceAcrossAFailover() throws Exception {
        String bootstrap = kafka.bootstrapServers();
        Map<String, String> c = TextEmbeddingJob.settings(
                "--bootstrap.servers=" + bootstrap,
                "--topic.input=fo-in",
                "--topic.output=fo-out",
                "--topic.dead-letters=fo-dead",
                "--group.id=fo",
                "--transactional-id-prefix=fo",
                "--checkpoint.interval-ms=200");
        kafka.createTopics(2, "fo-in", "fo-out", "fo-dead");

        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        // An unbounded job: one subtask fails once, on a message of the second half.
        TextEmbeddingJob.embedAndSink(
                c,
                TextEmbeddingJob.source(env, c)
                        .map(new FailOnceFrom(FIRST_HALF))
                        .name("fail-once"));
        JobClient job = env.executeAsync("text embeddings with a failover");
        try {
            List<String> badFirst = TextMessages.produce(bootstrap, "fo-in", 0, FIRST_HALF);
            // Committed outputs of the first half: a checkpoint completed before the failure.
            assertThat(CommittedTopicReader.read(
                                    bootstrap,
                                    "fo-out",
                                    FIRST_HALF - badFirst.size(),
                                    Duration.ofSeconds(90),
                                    Duration.ZERO)
                            .size())
                    .isEqualTo(FIRST_HALF - badFirst.size());
            List<String> badSecond = TextMessages.produce(bootstrap, "fo-in", FIRST_HALF, RECORDS);
            int bad = badFirst.size() + badSecond.size();

            // Beyond the expected count, one more poll would show duplicates.
            List<ConsumerRecord<String, String>> out = CommittedTopicReader.read(
                    bootstrap, "fo-out", RECORDS - bad, Duration.ofSeconds(90), Duration.ofSeconds(2));
            List<ConsumerRecord<String, String>> dead =
                    CommittedTopicReader.read(bootstrap, "fo-dead", bad, Duration.ofSeconds(60), Duration.ofSeconds(1));
            assertThat(FailOnceFrom.FAILURES.get()).as("injected failures").isEqualTo(1);

            Map<String, JsonNode> byId = new HashMap<>();
            for (ConsumerRecord<String, String> r : out) {
                JsonNode e = KafkaScoringJob.JSON.readTree(r.value());
                assertThat(byId.put(e.get("id").asText(), e))
                        .as("duplicate " + r.key())
                        .isNull();
            }
            assertThat(byId).hasSize(RECORDS - bad);
            assertThat(dead)
                    .extracting(ConsumerRecord::key)
                    .containsExactlyInAnyOrderElementsOf(concat(badFirst, badSecond));
            for (ConsumerRecord<String, String> d : dead) {
                String reason =
                        KafkaScoringJob.JSON.readTree(d.value()).get("reason").asText();
                int i = Integer.parseInt(d.key().substring(2));
                assertThat(reason)
                        .as(d.key())
                        .contains((i / 1000) % 2 == 0 ? "The text is empty" : "Missing field 'text'");
            }

            Path model = copy("encoder.onnx");
            Path tokenizer = copy("tokenizer.json");
            try (TextReference reference = new TextReference(model, tokenizer, 128)) {
                for (int i = 0; i < RECORDS; i++) {
                    if (TextMessages.isBad(i)) {
                        continue;
                    }
                    float[] expected = reference.meanEmbedding(TextMessages.text(i), true);
                    JsonNode got = byId.get(TextMessages.id(i)).get("embedding");
                    assertThat(got.size()).isEqualTo(expected.length);
                    for (int h = 0; h < expected.length; h++) {
                        assertThat(got.get(h).floatValue())
                                .as("%s[%d]", TextMessages.id(i), h)
                                .isCloseTo(expected[h], within(1e-5f));
                    }
                }
            }
        } finally {
            job.cancel().get();
        }
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new java.util.ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    private static Path copy(String name) throws Exception {
        Path file = dir.resolve(name);
        try (InputStream in = TextEmbeddingJobTest.class.getResourceAsStream("/models/text/" + name)) {
            Files.copy(in, file);
        }
        return file;
    }

    /** Passes messages through; throws once (in this JVM, in a first attempt) on a message with index {@code >= from}. */
    static final class FailOnceFrom extends RichMapFunction<KafkaMessage, KafkaMessage> {
        static final AtomicInteger FAILURES = new AtomicInteger();
        private final int from;
        private transient int attempt;

        FailOnceFrom(int from) {
            this.from = from;
        }

        @Override
        public void open(OpenContext context) {
            attempt = getRuntimeContext().getTaskInfo().getAttemptNumber();
        }

        @Override
        public KafkaMessage map(KafkaMessage m) {
            if (attempt == 0
                    && m.key != null
                    && Integer.parseInt(m.key.substring(2)) >= from
                    && FAILURES.compareAndSet(0, 1)) {
                throw new IllegalStateException("Injected failure at " + m.key);
            }
            return m;
        }
    }
}
