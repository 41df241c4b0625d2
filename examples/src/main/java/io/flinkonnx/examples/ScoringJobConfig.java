package io.flinkonnx.examples;

import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

/**
 * Settings of {@link KafkaScoringJob}, from {@code --key=value} flags and/or a properties file
 * ({@code --config=job.properties}; flags win). Unknown keys are refused, listing the known ones.
 *
 * <pre>
 * bootstrap.servers=localhost:9092
 * topic.input=transactions          topic.output=predictions       topic.dead-letters=dead-letters
 * topic.fallback-reports=fallback-reports                          topic.drift-reports=drift-reports
 * model=classpath:models/fraud-mlp.onnx    model.sha256=...         providers=cuda > cpu
 * drift.golden-vectors=/models/fraud-mlp-golden                     drift.interval-ms=600000
 * batch.max-size=64    batch.max-delay-ms=5    checkpoint.interval-ms=1000
 * group.id=flink-onnx-scoring    transactional-id-prefix=flink-onnx-scoring    bounded=false
 * </pre>
 */
public final class ScoringJobConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    static final Map<String, String> DEFAULTS = new LinkedHashMap<>();

    static {
        DEFAULTS.put("bootstrap.servers", "localhost:9092");
        DEFAULTS.put("topic.input", "transactions");
        DEFAULTS.put("topic.output", "predictions");
        DEFAULTS.put("topic.dead-letters", "dead-letters");
        DEFAULTS.put("topic.fallback-reports", "fallback-reports");
        DEFAULTS.put("topic.drift-reports", "drift-reports");
        DEFAULTS.put("model", "classpath:models/fraud-mlp.onnx");
        DEFAULTS.put("model.sha256", "");
        // Model updates without a restart: a control topic of JSON {"uri", "sha256", "version"} messages,
        // and/or a watched folder; both off by default.
        DEFAULTS.put("topic.model-updates", "");
        DEFAULTS.put("topic.model-update-reports", "model-update-reports");
        DEFAULTS.put("model.watch", "");
        DEFAULTS.put("model.watch.interval-ms", "60000");
        // A model per record: the JSON field whose value picks the model, and the URI template ({key} is the
        // value), e.g. country and s3://models/fraud-{key}.onnx; off by default.
        DEFAULTS.put("model.selector.field", "");
        DEFAULTS.put("model.selector.uri-template", "");
        DEFAULTS.put("models.max", "8");
        DEFAULTS.put("models.max-bytes", String.valueOf(1L << 30));
        DEFAULTS.put("providers", "cpu");
        DEFAULTS.put("drift.golden-vectors", "");
        DEFAULTS.put("drift.interval-ms", "600000");
        DEFAULTS.put("batch.max-size", "64");
        DEFAULTS.put("batch.max-delay-ms", "5");
        DEFAULTS.put("checkpoint.interval-ms", "1000");
        DEFAULTS.put("group.id", "flink-onnx-scoring");
        DEFAULTS.put("transactional-id-prefix", "flink-onnx-scoring");
        DEFAULTS.put("bounded", "false");
        DEFAULTS.put("parallelism", "2");
    }

    private final Map<String, String> values;

    private ScoringJobConfig(Map<String, String> values) {
        this.values = Map.copyOf(values);
    }

    public static ScoringJobConfig defaults() {
        return new ScoringJobConfig(DEFAULTS);
    }

    /** {@code --config=file.properties} first, then every {@code --key=value} flag. */
    public static ScoringJobConfig fromArgs(String... args) throws IOException {
        Map<String, String> v = new LinkedHashMap<>(DEFAULTS);
        for (String arg : args) {
            if (arg.startsWith("--config=")) {
                Properties p = new Properties();
                try (InputStream in = Files.newInputStream(Path.of(arg.substring("--config=".length())))) {
                    p.load(in);
                }
                p.stringPropertyNames().forEach(k -> put(v, k, p.getProperty(k)));
            }
        }
        for (String arg : args) {
            if (arg.startsWith("--config=")) {
                continue;
            }
            if (!arg.startsWith("--") || !arg.contains("=")) {
                throw new IllegalArgumentException("Arguments are --key=value, got '" + arg + "'");
            }
            int eq = arg.indexOf('=');
            put(v, arg.substring(2, eq), arg.substring(eq + 1));
        }
        return new ScoringJobConfig(v);
    }

    /** This config with {@code key} set. */
    public ScoringJobConfig with(String key, String value) {
        Map<String, String> v = new LinkedHashMap<>(values);
        put(v, key, value);
        return new ScoringJobConfig(v);
    }

    private static void put(Map<String, String> v, String key, String value) {
        if (!DEFAULTS.containsKey(key)) {
            throw new IllegalArgumentException(
                    "Unknown setting '" + key + "'. Known: " + String.join(", ", DEFAULTS.keySet()));
        }
        v.put(key, value.trim());
    }

    public String get(String key) {
        if (!DEFAULTS.containsKey(key)) {
            throw new IllegalArgumentException("Unknown setting '" + key + "'");
        }
        return values.get(key);
    }

    public long getLong(String key) {
        try {
            return Long.parseLong(get(key));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Setting " + key + " must be an integer, got '" + get(key) + "'");
        }
    }

    public Set<String> keys() {
        return values.keySet();
    }

    @Override
    public String toString() {
        return values.toString();
    }
}
