package io.flinkonnx.examples;

import java.io.PrintStream;
import java.util.Properties;
import java.util.SplittableRandom;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Produces the demo's synthetic card transactions ({@code {"id": "t-N", "features": [8 numbers]}}, key = id,
 * every 5,000th malformed on purpose) to a topic, then exits. The embedded demo calls it in-process; the Docker
 * compose file runs it against its broker so the scoring job has something to score:
 *
 * <pre>
 * java -cp flink-onnx-job.jar io.flinkonnx.examples.TransactionProducer \
 *     --bootstrap.servers=kafka:9092 --topic=transactions --records=20000
 * </pre>
 */
public final class TransactionProducer {
    private TransactionProducer() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = "localhost:9092";
        String topic = "transactions";
        int records = 20_000;
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (!arg.startsWith("--") || eq < 0) {
                throw new IllegalArgumentException("Arguments are --key=value, got '" + arg + "'");
            }
            String value = arg.substring(eq + 1);
            switch (arg.substring(2, eq)) {
                case "bootstrap.servers" -> bootstrap = value;
                case "topic" -> topic = value;
                case "records" -> records = Integer.parseInt(value);
                default ->
                    throw new IllegalArgumentException(
                            "Unknown argument '" + arg + "'. Known: --bootstrap.servers, --topic, --records");
            }
        }
        produce(bootstrap, topic, records, System.out);
    }

    /** Produces {@code n} transactions (every 5,000th malformed); returns how many were malformed. */
    static int produce(String bootstrap, String topic, int n, PrintStream out) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        SplittableRandom random = new SplittableRandom(1);
        int malformed = 0;
        out.printf("Producing %,d transactions to '%s': ", n, topic);
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
                    out.print((i + 1) * 100 / n + "% ");
                }
            }
            producer.flush();
        }
        out.printf("(%d malformed on purpose)%n", malformed);
        return malformed;
    }
}
