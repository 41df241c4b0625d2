package io.flinkonnx.providers;

import java.io.Serializable;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;

/** One execution provider of a chain, with its options (validated on construction). */
@PublicEvolving
public final class ProviderSpec implements Serializable {
    private static final long serialVersionUID = 1L;

    private final ExecutionProvider provider;
    private final Map<String, String> options;

    public ProviderSpec(ExecutionProvider provider, Map<String, String> options) {
        this.provider = Objects.requireNonNull(provider, "provider");
        options.forEach(provider::checkOption);
        this.options = Collections.unmodifiableMap(new LinkedHashMap<>(options));
    }

    public static ProviderSpec of(ExecutionProvider provider) {
        return new ProviderSpec(provider, Map.of());
    }

    public ExecutionProvider provider() {
        return provider;
    }

    /** Options in the order given. */
    public Map<String, String> options() {
        return options;
    }

    /** An option as a boolean (true/1), or {@code fallback} when absent. */
    boolean flag(String key, boolean fallback) {
        String v = options.get(key);
        return v == null ? fallback : v.equalsIgnoreCase("true") || v.equals("1");
    }

    /** An option as an int, or {@code fallback} when absent. */
    int integer(String key, int fallback) {
        String v = options.get(key);
        return v == null ? fallback : Integer.parseInt(v);
    }

    /** {@code cuda(device_id=0)}, the chain syntax; values with , ) or spaces are quoted. */
    @Override
    public String toString() {
        if (options.isEmpty()) {
            return provider.id();
        }
        return provider.id()
                + options.entrySet().stream()
                        .map(e -> e.getKey() + "=" + quoteIfNeeded(e.getValue()))
                        .collect(Collectors.joining(",", "(", ")"));
    }

    private static String quoteIfNeeded(String v) {
        return v.matches("[A-Za-z0-9_.:/\\-]*") ? v : "\"" + v.replace("\"", "\\\"") + "\"";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ProviderSpec
                && provider == ((ProviderSpec) o).provider
                && options.equals(((ProviderSpec) o).options);
    }

    @Override
    public int hashCode() {
        return Objects.hash(provider, options);
    }
}
