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

    /**
     * The model for {@code record}; null for the spec's model.
     *
     * @param record the record to score
     * @return the model that scores it, or null for the spec's own model
     * @throws Exception to send the record to the dead letters
     */
    ModelRef select(IN record) throws Exception;

    /**
     * A fixed map from a key of the record to its model; keys not in the map get the spec's model.
     *
     * @param <IN> the record type
     * @param <K> the key type
     * @param key reads the key of a record, not null
     * @param models the model of each key, not null (copied)
     * @return a selector looking the record's key up in {@code models}
     * @throws NullPointerException when {@code key} or {@code models} is null
     */
    static <IN, K> ModelSelector<IN> byKey(KeySelector<IN, K> key, Map<K, ModelRef> models) {
        Objects.requireNonNull(key, "key");
        Map<K, ModelRef> copy = new HashMap<>(Objects.requireNonNull(models, "models"));
        return record -> copy.get(key.getKey(record));
    }

    /**
     * A URI per value of a field: {@code template} with {@code {key}} replaced by the field's value, e.g.
     * {@code "s3://models/fraud-{key}.onnx"}. A value that would leave the template's folder (a {@code /},
     * {@code ..}, {@code :} and the like, percent-encoded or not) or is empty sends its record to the dead
     * letters.
     *
     * @param <IN> the record type
     * @param field reads the value that names the record's model, not null
     * @param template the model URI with {@code {key}} where the value goes
     * @return a selector building each record's model URI from {@code template}
     * @throws IllegalArgumentException when {@code template} is null or does not contain {@code {key}}
     * @throws NullPointerException when {@code field} is null
     */
    static <IN> ModelSelector<IN> uriTemplate(KeySelector<IN, String> field, String template) {
        Objects.requireNonNull(field, "field");
        Preconditions.checkArgument(
                template != null && template.contains("{key}"),
                "The URI template must contain {key}, got '%s'",
                template);
        return record -> ModelRef.of(confinedUri(template, field.getKey(record)));
    }

    /**
     * {@code template} with {@code {key}} replaced by {@code key}, refused unless it stays in the template's
     * folder. Checked on the key as every file system would read it: percent-decoded until nothing changes
     * ({@code file:} URIs and object stores decode once, a double-encoded key twice), so neither a literal
     * nor an encoded separator or {@code ..} gets through, and the decoded path after the folder, normalized,
     * must not climb out of it.
     */
    private static String confinedUri(String template, String key) {
        String refused = "The record's model key '" + key + "' cannot name a model in " + template;
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException(refused + ": it is empty");
        }
        String decodedKey = percentDecodedFully(key);
        if (decodedKey.isEmpty()
                || decodedKey.contains("/")
                || decodedKey.contains("\\")
                || decodedKey.contains("..")
                || decodedKey.indexOf('\0') >= 0
                || decodedKey.chars().anyMatch(c -> ":@?#".indexOf(c) >= 0)) {
            // ':' and '@' would change a template's scheme or host when the key stands there; '?' and '#' end
            // the path of a URI
            throw new IllegalArgumentException(refused + ": decoded it is '" + decodedKey
                    + "', and a key is a file name: no '/', '\\', '..', ':', '@', '?', '#' or NUL, percent-encoded"
                    + " or not");
        }
        int at = template.indexOf("{key}");
        int folderEnd = template.lastIndexOf('/', at) + 1;
        String tail = percentDecodedFully(template.substring(folderEnd).replace("{key}", key));
        int depth = 0;
        for (String segment : tail.split("[/\\\\]", -1)) {
            if (segment.equals("..")) {
                depth--;
            } else if (!segment.isEmpty() && !segment.equals(".")) {
                depth++;
            }
            if (depth < 0) {
                throw new IllegalArgumentException(
                        refused + ": the path leaves the template's folder '" + template.substring(0, folderEnd) + "'");
            }
        }
        return template.replace("{key}", key);
    }

    /** Percent-decodes (UTF-8) until the text stops changing; a malformed escape is kept as it is. */
    private static String percentDecodedFully(String s) {
        String current = s;
        for (int round = 0; round < 8; round++) {
            String next = percentDecodedOnce(current);
            if (next.equals(current)) {
                return current;
            }
            current = next;
        }
        return current;
    }

    private static String percentDecodedOnce(String s) {
        if (s.indexOf('%') < 0) {
            return s;
        }
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < s.length(); ) {
            char c = s.charAt(i);
            if (c == '%' && i + 2 < s.length()) {
                int hi = Character.digit(s.charAt(i + 1), 16);
                int lo = Character.digit(s.charAt(i + 2), 16);
                if (hi >= 0 && lo >= 0) {
                    out.write(hi * 16 + lo);
                    i += 3;
                    continue;
                }
            }
            int cp = s.codePointAt(i);
            byte[] bytes = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
            out.write(bytes, 0, bytes.length);
            i += Character.charCount(cp);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /**
     * A canary split: the fraction {@code challengerFraction} of keys goes to {@code challenger}, the rest to
     * {@code champion}. Which side a key is on depends on the key alone (a hash of its
     * {@code toString()}), so a key keeps its model across restarts, rescaling and subtasks.
     *
     * @param <IN> the record type
     * @param key reads the key that picks the side, not null
     * @param champion the model of the keys outside the fraction, not null
     * @param challenger the model of the keys in the fraction, not null
     * @param challengerFraction the fraction of keys sent to {@code challenger}, in [0, 1]
     * @return a selector splitting records by key between the two models
     * @throws IllegalArgumentException when {@code challengerFraction} is not in [0, 1]
     * @throws NullPointerException when {@code key}, {@code champion} or {@code challenger} is null
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
