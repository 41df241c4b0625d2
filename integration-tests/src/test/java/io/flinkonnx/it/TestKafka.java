package io.flinkonnx.it;

import io.flinkonnx.examples.CommittedTopicReader;
import io.flinkonnx.examples.EmbeddedKafka;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringSerializer;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.kafka.KafkaContainer;

/**
 * A real Kafka broker for the integration tests: Testcontainers' Kafka where a Docker engine answers,
 * otherwise the in-process KRaft broker of the examples. The tests run either way, never skip.
 */
final class TestKafka implements AutoCloseable {
    private final AutoCloseable broker;
    private final String bootstrapServers;
    final String kind;

    private TestKafka(AutoCloseable broker, String bootstrapServers, String kind) {
        this.broker = broker;
        this.bootstrapServers = bootstrapServers;
        this.kind = kind;
    }

    static TestKafka start() throws Exception {
        boolean docker;
        try {
            docker = DockerClientFactory.instance().isDockerAvailable();
        } catch (RuntimeException e) {
            docker = false;
        }
        if (docker) {
            KafkaContainer container = new KafkaContainer("apache/kafka:4.2.0");
            container.start();
            return new TestKafka(container, container.getBootstrapServers(), "Testcontainers apache/kafka:4.2.0");
        }
        EmbeddedKafka embedded = EmbeddedKafka.start();
        return new TestKafka(embedded, embedded.bootstrapServers(), "in-process KRaft broker");
    }

    /**
     * A broker in its own process, for the tests of a cluster of separate processes: Testcontainers' Kafka
     * where a Docker engine answers, else the examples' broker in a JVM of its own ({@link KafkaBrokerProcess}).
     */
    static TestKafka startInOwnProcess(Path log) throws Exception {
        boolean docker;
        try {
            docker = DockerClientFactory.instance().isDockerAvailable();
        } catch (RuntimeException e) {
            docker = false;
        }
        if (docker) {
            return start();
        }
        KafkaBrokerProcess broker = KafkaBrokerProcess.start(log);
        return new TestKafka(broker, broker.bootstrapServers, "KRaft broker in its own JVM");
    }

    String bootstrapServers() {
        return bootstrapServers;
    }

    void createTopics(int partitions, String... topics) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(Arrays.stream(topics)
                            .map(t -> new NewTopic(t, partitions, (short) 1))
                            .collect(Collectors.toList()))
                    .all()
                    .get(30, TimeUnit.SECONDS);
        }
    }

    KafkaProducer<String, String> producer() {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        return new KafkaProducer<>(p);
    }

    KafkaConsumer<String, String> committedReader(String topic) {
        return CommittedTopicReader.subscribe(bootstrapServers, topic);
    }

    /** Everything committed to {@code topic} once {@code expected} records are visible (fails after a minute). */
    List<ConsumerRecord<String, String>> readCommitted(String topic, int expected) {
        // one more poll after the expected count: anything beyond it would be a duplicate
        return CommittedTopicReader.read(
                bootstrapServers, topic, expected, Duration.ofMinutes(1), Duration.ofMillis(500));
    }

    @Override
    public void close() throws Exception {
        broker.close();
    }
}
