package io.flinkonnx.examples;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.SplittableRandom;
import org.apache.flink.annotation.Internal;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The text demo's messages, {@code {"id": "m-<i>", "text": "..."}} keyed by id: the same text for the same
 * {@code i} in every run, most a few words long, every 20th a long one (up to ~150 words, past the max length),
 * and every 1,000th bad on purpose (alternately an empty text and no {@code text} field).
 */
@Internal
public final class TextMessages {
    private static final String[] WORDS = {
        "the",
        "a",
        "is",
        "was",
        "good",
        "bad",
        "great",
        "terrible",
        "movie",
        "service",
        "order",
        "late",
        "fast",
        "love",
        "hate",
        "not",
        "very",
        "and",
        "but",
        "it",
        "this",
        "that",
        "we",
        "you",
        "stream",
        "flink",
        "model",
        "text",
        "token",
        "ok",
        "refund",
        "please",
        "thanks",
        "help",
        "delivery",
        "parcel",
        "2024",
        "kafka",
        "!",
        "?"
    };

    private TextMessages() {}

    /** Whether message {@code i} is a bad one. */
    public static boolean isBad(int i) {
        return i % 1000 == 999;
    }

    /** The text of message {@code i} (for a good one). */
    public static String text(int i) {
        SplittableRandom random = new SplittableRandom(i * 0x9E3779B97F4A7C15L + 7);
        int words = i % 20 == 19 ? random.nextInt(40, 151) : random.nextInt(1, 16);
        StringBuilder sb = new StringBuilder();
        for (int w = 0; w < words; w++) {
            sb.append(w == 0 ? "" : " ").append(WORDS[random.nextInt(WORDS.length)]);
        }
        return sb.toString();
    }

    /** The JSON value of message {@code i}. */
    public static String json(int i) {
        String id = id(i);
        if (isBad(i)) {
            return (i / 1000) % 2 == 0
                    ? KafkaScoringJob.json(Map.of("id", id, "text", ""))
                    : KafkaScoringJob.json(Map.of("id", id, "body", text(i)));
        }
        return KafkaScoringJob.json(Map.of("id", id, "text", text(i)));
    }

    /** The id (and key) of message {@code i}. */
    public static String id(int i) {
        return "m-" + i;
    }

    /** Produces messages {@code from .. to-1} to {@code topic}; returns the ids of the bad ones. */
    public static List<String> produce(String bootstrap, String topic, int from, int to) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        List<String> bad = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = from; i < to; i++) {
                producer.send(new ProducerRecord<>(topic, id(i), json(i)));
                if (isBad(i)) {
                    bad.add(id(i));
                }
            }
            producer.flush();
        }
        return bad;
    }
}
