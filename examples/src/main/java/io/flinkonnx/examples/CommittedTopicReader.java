package io.flinkonnx.examples;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.flink.annotation.Internal;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads a topic back from its beginning under {@code isolation.level=read_committed}, so only what committed
 * transactions wrote is seen: what the demo prints, and what the integration tests assert on. Bounded: it
 * polls with a timeout until the expected count arrived or a deadline passed, never sleeps.
 */
@Internal
public final class CommittedTopicReader {
    private CommittedTopicReader() {}

    /**
     * A String consumer subscribed to {@code topic}, reading from the earliest offset under read_committed, in
     * a fresh consumer group of its own; the caller polls and closes it.
     */
    public static KafkaConsumer<String, String> subscribe(String bootstrapServers, String topic) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, "read-committed-" + topic + "-" + System.nanoTime());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p);
        consumer.subscribe(List.of(topic));
        return consumer;
    }

    /**
     * The committed records of {@code topic}, read from the start until {@code expected} arrived or
     * {@code timeout} passed (fewer then). A positive {@code settle} polls once more for that long after the
     * expected count, so that records beyond it (duplicates) are returned too; {@link Duration#ZERO} skips it.
     */
    public static List<ConsumerRecord<String, String>> read(
            String bootstrapServers, String topic, int expected, Duration timeout, Duration settle) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = subscribe(bootstrapServers, topic)) {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (out.size() < expected && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(out::add);
            }
            if (!settle.isZero() && !settle.isNegative()) {
                consumer.poll(settle).forEach(out::add);
            }
        }
        return out;
    }
}
