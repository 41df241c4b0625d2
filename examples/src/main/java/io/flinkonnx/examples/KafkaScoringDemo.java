package io.flinkonnx.examples;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.SplittableRandom;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The one-command demo: an in-process KRaft broker, a Flink MiniCluster and the bundled fraud model. It
 * produces synthetic transactions (a few malformed on purpose), runs {@link KafkaScoringJob} over them
 * (bounded, exactly-once), reads the topics back and prints throughput, predictions, dead letters and the
 * fallback and drift reports.
 *
 * <pre>
 * ./mvnw -q -B -pl examples -am -DskipTests install exec:exec
 * </pre>
 */
public final class KafkaScoringDemo {
    private KafkaScoringDemo() {}

    public static void main(String[] args) throws Exception {
        int records = 20_000;
        for (String arg : args) {
            if (arg.startsWith("--records=")) {
                records = Integer.parseInt(arg.substring("--records=".length()));
            } else if (!arg.isBlank()) {
                throw new IllegalArgumentException("Unknown argument '" + arg + "'; use --records=N");
            }
        }
        run(records);
        System.exit(0); // Kafka's and Flink's non-daemon threads may linger a while after close
    }

    static void run(int records) throws Exception {
        System.out.println("Starting an in-process Kafka broker (KRaft)...");
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            ScoringJobConfig config = ScoringJobConfig.defaults()
                    .with("bootstrap.servers", kafka.bootstrapServers())
                    .with("bounded", "true")
                    .with("drift.golden-vectors", extractGoldenVectors().toString());
            kafka.createTopics(4, config.get("topic.input"));
            kafka.createTopics(
                    2,
                    config.get("topic.output"),
                    config.get("topic.dead-letters"),
                    config.get("topic.fallback-reports"),
                    config.get("topic.drift-reports"));
            int malformed = produce(kafka.bootstrapServers(), config.get("topic.input"), records);

            System.out.printf(
                    "Scoring with %s on a local Flink MiniCluster (parallelism %s, batches of %s)...%n",
                    config.get("model"), config.get("parallelism"), config.get("batch.max-size"));
            Configuration flink = new Configuration();
            flink.set(TaskManagerOptions.NUM_TASK_SLOTS, (int) config.getLong("parallelism"));
            // A demo should stop and say why rather than restart forever (the default under checkpointing).
            flink.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
            flink.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 2);
            StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(flink);
            KafkaScoringJob.build(env, config);
            long start = System.nanoTime();
            env.execute("flink-onnx Kafka scoring demo");
            double seconds = (System.nanoTime() - start) / 1e9;

            List<ConsumerRecord<String, String>> predictions =
                    readAll(kafka.bootstrapServers(), config.get("topic.output"), records - malformed);
            List<ConsumerRecord<String, String>> deadLetters =
                    readAll(kafka.bootstrapServers(), config.get("topic.dead-letters"), malformed);
            List<ConsumerRecord<String, String>> fallback =
                    readAll(kafka.bootstrapServers(), config.get("topic.fallback-reports"), (int)
                            config.getLong("parallelism"));
            List<ConsumerRecord<String, String>> drift = readAll(
                    kafka.bootstrapServers(), config.get("topic.drift-reports"), (int) config.getLong("parallelism"));

            System.out.printf(
                    Locale.ROOT,
                    "%nScored %,d transactions in %.1f s, job start-up included (%,.0f records/s);"
                            + " %d malformed messages went to '%s'.%n",
                    predictions.size(),
                    seconds,
                    records / seconds,
                    deadLetters.size(),
                    config.get("topic.dead-letters"));
            System.out.println("\nA few predictions (" + config.get("topic.output") + "):");
            predictions.stream().limit(5).forEach(r -> System.out.println("  " + r.value()));
            System.out.println("\nA dead letter:");
            deadLetters.stream().limit(1).forEach(r -> System.out.println("  " + r.value()));
            System.out.println("\nFallback report (one per subtask, here subtask 0):");
            fallback.stream().limit(1).forEach(r -> System.out.println("  " + summary(r.value())));
            System.out.println("\nDrift report against the bundled golden vectors:");
            drift.stream().limit(1).forEach(r -> System.out.println("  " + r.value()));
            if (predictions.size() != records - malformed || deadLetters.size() != malformed) {
                throw new IllegalStateException("Expected " + (records - malformed) + " predictions and " + malformed
                        + " dead letters, read " + predictions.size() + " and " + deadLetters.size());
            }
            System.out.println("\nDone.");
        }
    }

    /** Produces {@code n} transactions (every 5,000th malformed); returns how many were malformed. */
    static int produce(String bootstrap, String topic, int n) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        SplittableRandom random = new SplittableRandom(1);
        int malformed = 0;
        System.out.printf("Producing %,d transactions to '%s': ", n, topic);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < n; i++) {
                String id = "t-" + i;
                String value = FraudFeatures.toJson(id, FraudFeatures.draw(random));
                if (i % 5_000 == 4_999) {
                    value = malformed++ % 2 == 0
                            ? "{\"id\":\"" + id + "\",\"features\":[1,2,3"
                            : "{\"id\":\"" + id + "\",\"features\":[1,2,3]}";
                }
                producer.send(new ProducerRecord<>(topic, id, value));
                if ((i + 1) % Math.max(1, n / 10) == 0) {
                    System.out.print((i + 1) * 100 / n + "% ");
                }
            }
            producer.flush();
        }
        System.out.println();
        return malformed;
    }

    /** Reads a topic from the start under read_committed until {@code expected} records arrived (or 60 s passed). */
    static List<ConsumerRecord<String, String>> readAll(String bootstrap, String topic, int expected) {
        return CommittedTopicReader.read(bootstrap, topic, expected, Duration.ofSeconds(60), Duration.ZERO);
    }

    private static String summary(String json) {
        try {
            JsonNode r = KafkaScoringJob.JSON.readTree(json);
            return r.get("verdict").asText() + ": asked " + r.get("requested").asText() + ", registered "
                    + r.get("registered") + ", " + r.get("nodes").size() + " nodes, "
                    + r.get("nodesOnCpu").asInt()
                    + " on cpu, " + r.get("epBoundaries").asInt() + " EP boundaries; nodes " + r.get("nodes");
        } catch (Exception e) {
            return json;
        }
    }

    /** The bundled golden vectors, copied out of the classpath (drift checks read a folder). */
    static Path extractGoldenVectors() throws Exception {
        Path dir = Files.createTempDirectory("fraud-mlp-golden");
        Path set = Files.createDirectories(dir.resolve("test_data_set_0"));
        for (String f : new String[] {"input_0.pb", "output_0.pb"}) {
            try (InputStream in =
                    KafkaScoringDemo.class.getResourceAsStream("/models/fraud-mlp-golden/test_data_set_0/" + f)) {
                Files.copy(in, set.resolve(f));
            }
        }
        dir.toFile().deleteOnExit();
        return dir;
    }
}
