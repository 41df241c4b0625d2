package io.flinkonnx.examples;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * The one-command text demo: an in-process KRaft broker, a Flink MiniCluster, the bundled text encoder and its
 * {@code tokenizer.json} ({@code models/text/}). It produces text messages (a few bad on purpose), runs
 * {@link TextEmbeddingJob} over them (bounded, exactly-once), reads both topics back under read_committed and
 * prints how many embeddings and dead letters arrived, the rate, one embedding and one dead letter.
 *
 * <pre>
 * ./mvnw -q -B -pl examples -am -DskipTests install exec:exec \
 *     -Dexec.mainClass=io.flinkonnx.examples.TextEmbeddingDemo -Dexec.demoArgs=--records=5000
 * </pre>
 */
public final class TextEmbeddingDemo {
    private TextEmbeddingDemo() {}

    public static void main(String[] args) throws Exception {
        int records = 5_000;
        for (String arg : args) {
            if (arg.startsWith("--records=")) {
                records = Integer.parseInt(arg.substring("--records=".length()));
            } else if (!arg.isBlank()) {
                throw new IllegalArgumentException("Unknown argument '" + arg + "'; use --records=N");
            }
        }
        if (System.getProperty(KafkaScoringDemo.LOG_FILE_PROPERTY) == null) {
            System.setProperty(
                    KafkaScoringDemo.LOG_FILE_PROPERTY,
                    Path.of("target", "text-embedding-demo.log")
                            .toAbsolutePath()
                            .toString());
        }
        run(records, System.out);
        System.exit(0); // Kafka's and Flink's non-daemon threads may linger a while after close
    }

    static void run(int records, PrintStream out) throws Exception {
        out.println("flink-onnx Kafka text embedding demo. Flink's and Kafka's logs: "
                + System.getProperty(KafkaScoringDemo.LOG_FILE_PROPERTY));
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            String bootstrap = kafka.bootstrapServers();
            Map<String, String> c = TextEmbeddingJob.settings("--bootstrap.servers=" + bootstrap, "--bounded=true");
            kafka.createTopics(2, c.get("topic.input"), c.get("topic.output"), c.get("topic.dead-letters"));
            List<String> bad = TextMessages.produce(bootstrap, c.get("topic.input"), 0, records);
            out.printf(
                    Locale.ROOT,
                    "Produced %,d text messages to '%s' on %s (%d bad on purpose).%n",
                    records,
                    c.get("topic.input"),
                    bootstrap,
                    bad.size());
            out.printf(
                    Locale.ROOT,
                    "Embedding with %s and %s (max length %s tokens, length buckets, exactly-once)...%n",
                    c.get("model"),
                    c.get("tokenizer"),
                    c.get("max-length"));
            StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(
                    KafkaScoringDemo.flinkConfiguration(ScoringJobConfig.defaults()));
            TextEmbeddingJob.build(env, c);
            long start = System.nanoTime();
            env.execute("flink-onnx Kafka text embedding demo");
            double seconds = (System.nanoTime() - start) / 1e9;

            List<ConsumerRecord<String, String>> embeddings = CommittedTopicReader.read(
                    bootstrap, c.get("topic.output"), records - bad.size(), Duration.ofSeconds(60), Duration.ZERO);
            List<ConsumerRecord<String, String>> deadLetters = CommittedTopicReader.read(
                    bootstrap, c.get("topic.dead-letters"), bad.size(), Duration.ofSeconds(60), Duration.ZERO);
            if (embeddings.size() != records - bad.size() || deadLetters.size() != bad.size()) {
                throw new IllegalStateException("Expected " + (records - bad.size()) + " embeddings and " + bad.size()
                        + " dead letters, read " + embeddings.size() + " and " + deadLetters.size());
            }
            out.printf(
                    Locale.ROOT,
                    "Embeddings    %,d in '%s', %,.0f records/s from job submission to its last commit (%.1f s)%n",
                    embeddings.size(),
                    c.get("topic.output"),
                    records / seconds,
                    seconds);
            JsonNode first = KafkaScoringJob.JSON.readTree(embeddings.get(0).value());
            out.printf(
                    Locale.ROOT,
                    "              for example %s: %s%n",
                    first.get("id").asText(),
                    abbreviate(first.get("embedding").toString(), 90));
            out.printf(Locale.ROOT, "Dead letters  %d in '%s'", deadLetters.size(), c.get("topic.dead-letters"));
            if (deadLetters.isEmpty()) {
                out.println();
            } else {
                JsonNode d = KafkaScoringJob.JSON.readTree(deadLetters.get(0).value());
                out.printf(
                        Locale.ROOT,
                        ", for example%n              %s: %s%n",
                        d.get("key").asText(),
                        abbreviate(d.get("reason").asText(), 90));
            }
            out.println("Done.");
        }
    }

    private static String abbreviate(String s, int max) {
        return s.length() <= max ? s : s.substring(0, max - 3) + "...";
    }
}
