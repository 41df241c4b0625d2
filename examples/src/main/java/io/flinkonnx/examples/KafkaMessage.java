package io.flinkonnx.examples;

/** A Kafka record as read, with where it came from (so a dead letter can point back to it). */
public class KafkaMessage {
    public String topic;
    public int partition;
    public long offset;
    public String key;
    public String value;
    public long timestamp;

    public KafkaMessage() {}

    public KafkaMessage(String topic, int partition, long offset, String key, String value, long timestamp) {
        this.topic = topic;
        this.partition = partition;
        this.offset = offset;
        this.key = key;
        this.value = value;
        this.timestamp = timestamp;
    }

    @Override
    public String toString() {
        return topic + "-" + partition + "@" + offset;
    }
}
