package io.flinkonnx.flink;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.util.Preconditions;

/**
 * Chooses the model that scores each record, for {@link OnnxInference#batchedPerModel}: a model per
 * tenant, per country, a champion and a challenger. Serializable; called on the task thread for every
 * record, so keep it cheap. A selector that throws sends its record to the dead letters; one that returns
 * null sends it to the spec's own model.
 *
 * <pre>{@code
 * ModelSelector<Txn> perCountry = txn -> ModelRef.of("s3://models/fraud-" + txn.country + ".onnx");
 * ModelSelector<Txn> canary = ModelSelector.split(txn -> txn.cardId,
 *         ModelRef.of("s3://models/fraud-v7.onnx"), ModelRef.of("s3://models/fraud-v8.onnx"), 0.05);
 * }</pre>
 */
@PublicEvolving
@FunctionalInterface
public interface ModelSelector<IN> extends Serializable {

    /** The model for {@code record}; null for the spec's model. */
    ModelRef select(IN record) throws Exception;

    /** A fixed map from a key of the record to its model; keys not in the map get the spec's model. */
    static <IN, K> ModelSelector<IN> byKey(KeySelector<IN, K> key, Map<K, ModelRef> models) {
        Objects.requireNonNull(key, "key");
        Map<K, ModelRef> copy = new HashMap<>(Objects.requireNonNull(models, "models"));
        return record -> copy.get(key.getKey(record));
    }

    /**
     * A URI per value of a field: {@code template} with {@code {key}} replaced by the field's value, e.g.
     * {@code "s3://models/fraud-{key}.onnx"}.
     */
    static <IN> ModelSelector<IN> uriTemplate(KeySelector<IN, String> field, String template) {
        Objects.requireNonNull(field, "field");
        Preconditions.checkArgument(
                template != null && template.contains("{key}"),
                "The URI template must contain {key}, got '%s'",
                template);
        return record -> {
            String value = field.getKey(record);
            if (value == null || value.isEmpty() || value.contains("/") || value.contains("..")) {
                throw new IllegalArgumentException(
                        "The record's model key '" + value + "' cannot name a model in " + template);
            }
            return ModelRef.of(template.replace("{key}", value));
        };
    }

    /**
     * A canary split: the fraction {@code challengerFraction} of keys goes to {@code challenger}, the rest to
     * {@code champion}. Which side a key is on depends on the key alone (a hash of its
     * {@code toString()}), so a key keeps its model across restarts, rescaling and subtasks.
     */
    static <IN> ModelSelector<IN> split(
            KeySelector<IN, ?> key, ModelRef champion, ModelRef challenger, double challengerFraction) {
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(champion, "champion");
        Objects.requireNonNull(challenger, "challenger");
        Preconditions.checkArgument(
                challengerFraction >= 0 && challengerFraction <= 1,
                "challengerFraction must be in [0, 1], got %s",
                challengerFraction);
        return record -> inFraction(String.valueOf(key.getKey(record)), challengerFraction) ? challenger : champion;
    }

    /**
     * Whether {@code key} falls in the first {@code fraction} of the hash space: FNV-1a over the key's UTF-8
     * bytes, then MurmurHash3's 64-bit finalizer, as a uniform number in [0, 1). Fixed forever: changing it
     * would move keys between champion and challenger.
     */
    private static boolean inFraction(String key, double fraction) {
        long h = 0xcbf29ce484222325L;
        for (byte b : key.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        h *= 0xc4ceb9fe1a85ec53L;
        h ^= h >>> 33;
        return (h >>> 11) * 0x1.0p-53 < fraction;
    }
}
