package io.flinkonnx.examples;

/** A Kafka record as read, with where it came from (so a dead letter can point back to it). */
public class KafkaMessage {
    public String topic;
    public int partition;
    public long offset;
    public String key;
    public String value;
    /** The Kafka record's timestamp (CreateTime: when the producer sent it). */
    public long timestamp;
    /** When the job's Kafka source read the record (wall clock, microseconds): where latency starts. */
    public long readAtMicros;

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
