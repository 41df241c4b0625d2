package io.flinkonnx.providers;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.Configuration;

/**
 * An ordered fallback chain of execution providers, e.g.
 * {@code tensorrt(device_id=0,trt_fp16_enable=true) > cuda(device_id=0) > cpu}.
 *
 * <p>Each EP is added to the session in order; one that the ONNX Runtime build lacks, or that has no
 * device, is skipped and the reason recorded in a {@link ProviderResolution}. CPU is always last: it is
 * appended when not written, and it is an error to write it anywhere else. In {@linkplain #strict()
 * strict} mode a skipped EP fails session creation instead.
 *
 * <pre>{@code
 * ProviderChain chain = ProviderChain.parse("cuda(device_id=0) > cpu");
 * ProviderChain fromFlink = ProviderChain.fromConfiguration(flinkConfig); // onnx.providers.* keys
 * }</pre>
 *
 * <p>Immutable and serializable.
 */
@PublicEvolving
public final class ProviderChain implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Configuration key prefix read by {@link #fromConfiguration} and {@link #fromMap}. */
    public static final String CONFIG_PREFIX = "onnx.providers.";

    private final List<ProviderSpec> providers;
    private final boolean strict;

    private ProviderChain(List<ProviderSpec> providers, boolean strict) {
        List<ProviderSpec> list = new ArrayList<>(providers);
        for (int i = 0; i < list.size(); i++) {
            if (list.get(i).provider() == ExecutionProvider.CPU && i != list.size() - 1) {
                throw new IllegalArgumentException("cpu must be the last execution provider of a chain (it takes every"
                        + " node the others leave), but the chain is: " + describe(list));
            }
            for (int j = 0; j < i; j++) {
                if (list.get(j).provider() == list.get(i).provider()) {
                    throw new IllegalArgumentException("Execution provider "
                            + list.get(i).provider().id() + " appears twice in the chain: " + describe(list));
                }
            }
        }
        if (list.isEmpty() || list.get(list.size() - 1).provider() != ExecutionProvider.CPU) {
            list.add(ProviderSpec.of(ExecutionProvider.CPU));
        }
        this.providers = List.copyOf(list);
        this.strict = strict;
    }

    /** Only the CPU EP. */
    public static ProviderChain cpu() {
        return new ProviderChain(List.of(), false);
    }

    /** A chain of the given EPs, CPU appended. */
    public static ProviderChain of(ProviderSpec... specs) {
        return new ProviderChain(List.of(specs), false);
    }

    /**
     * Parses {@code name[(key=value,...)] > name[...] > ...}. Names are case-insensitive ({@code trt},
     * {@code dml}, {@code onednn} are aliases); a value containing {@code ,} or {@code )} is written in
     * double quotes.
     *
     * @throws IllegalArgumentException naming the unknown EP or option and listing the valid ones
     */
    public static ProviderChain parse(String text) {
        Objects.requireNonNull(text, "chain text");
        return new ProviderChain(new Parser(text).chain(), false);
    }

    /**
     * Reads {@code chain}, {@code strict} and {@code <ep>.<option>} entries, e.g.
     * <pre>
     * chain: tensorrt &gt; cuda &gt; cpu
     * strict: false
     * cuda.device_id: 0
     * tensorrt.trt_fp16_enable: true
     * </pre>
     * An option for an EP that is not in the chain is an error (it would be silently ignored).
     */
    public static ProviderChain fromMap(Map<String, String> entries) {
        String text = entries.getOrDefault("chain", "cpu");
        List<ProviderSpec> specs = new ArrayList<>(new Parser(text).chain());
        boolean strict = false;
        for (Map.Entry<String, String> e : entries.entrySet()) {
            String key = e.getKey();
            if (key.equals("chain")) {
                continue;
            }
            if (key.equals("strict")) {
                strict = Boolean.parseBoolean(e.getValue().trim());
                continue;
            }
            int dot = key.indexOf('.');
            if (dot < 0) {
                throw new IllegalArgumentException("Unknown provider setting '" + key + "'. Valid: chain, strict,"
                        + " <provider>.<option> (providers: " + ExecutionProvider.validIds() + ").");
            }
            ExecutionProvider ep = ExecutionProvider.fromId(key.substring(0, dot));
            int index = indexOf(specs, ep);
            if (index < 0 && ep == ExecutionProvider.CPU) {
                specs.add(ProviderSpec.of(ep));
                index = specs.size() - 1;
            }
            if (index < 0) {
                throw new IllegalArgumentException("Option '" + key + "' is set for execution provider " + ep.id()
                        + ", which is not in the chain '" + text + "'.");
            }
            Map<String, String> options = new LinkedHashMap<>(specs.get(index).options());
            options.put(key.substring(dot + 1), e.getValue().trim());
            specs.set(index, new ProviderSpec(ep, options));
        }
        return new ProviderChain(specs, strict);
    }

    /** {@link #fromMap} over the entries of {@code config} under {@value #CONFIG_PREFIX}. */
    public static ProviderChain fromConfiguration(Configuration config) {
        Map<String, String> entries = new LinkedHashMap<>();
        config.toMap().forEach((k, v) -> {
            if (k.startsWith(CONFIG_PREFIX)) {
                entries.put(k.substring(CONFIG_PREFIX.length()), v);
            }
        });
        return fromMap(entries);
    }

    /** This chain, failing session creation when any EP before CPU cannot be added. */
    public ProviderChain strict() {
        return new ProviderChain(providers, true);
    }

    public boolean isStrict() {
        return strict;
    }

    /** The EPs in order; CPU is last. */
    public List<ProviderSpec> providers() {
        return providers;
    }

    /** The first EP asked for (CPU for a CPU-only chain). */
    public ExecutionProvider preferred() {
        return providers.get(0).provider();
    }

    /** The chain text; {@link #parse} of it gives an equal chain (strictness aside). */
    @Override
    public String toString() {
        return describe(providers) + (strict ? " (strict)" : "");
    }

    private static String describe(List<ProviderSpec> list) {
        return list.stream().map(ProviderSpec::toString).collect(Collectors.joining(" > "));
    }

    private static int indexOf(List<ProviderSpec> specs, ExecutionProvider ep) {
        for (int i = 0; i < specs.size(); i++) {
            if (specs.get(i).provider() == ep) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ProviderChain
                && providers.equals(((ProviderChain) o).providers)
                && strict == ((ProviderChain) o).strict;
    }

    @Override
    public int hashCode() {
        return Objects.hash(providers, strict);
    }

    /** A small recursive-descent parser with positions in its messages. */
    private static final class Parser {
        private final String text;
        private int pos;

        Parser(String text) {
            this.text = text;
        }

        List<ProviderSpec> chain() {
            List<ProviderSpec> specs = new ArrayList<>();
            skipSpaces();
            if (pos == text.length()) {
                throw error("an execution provider name (" + ExecutionProvider.validIds() + ")");
            }
            specs.add(spec());
            skipSpaces();
            while (pos < text.length()) {
                expect('>');
                specs.add(spec());
                skipSpaces();
            }
            return specs;
        }

        private ProviderSpec spec() {
            skipSpaces();
            int start = pos;
            while (pos < text.length() && (Character.isLetterOrDigit(text.charAt(pos)) || text.charAt(pos) == '_')) {
                pos++;
            }
            if (start == pos) {
                throw error("an execution provider name (" + ExecutionProvider.validIds() + ")");
            }
            ExecutionProvider ep = ExecutionProvider.fromId(text.substring(start, pos));
            Map<String, String> options = new LinkedHashMap<>();
            skipSpaces();
            if (pos < text.length() && text.charAt(pos) == '(') {
                pos++;
                skipSpaces();
                if (pos < text.length() && text.charAt(pos) == ')') {
                    pos++;
                } else {
                    do {
                        skipSpaces();
                        String key = key();
                        skipSpaces();
                        expect('=');
                        skipSpaces();
                        String value = value();
                        if (options.put(key, value) != null) {
                            throw new IllegalArgumentException(
                                    "Option '" + key + "' of " + ep.id() + " is given twice in '" + text + "'");
                        }
                        skipSpaces();
                    } while (consume(','));
                    expect(')');
                }
            }
            return new ProviderSpec(ep, options);
        }

        private String key() {
            int start = pos;
            while (pos < text.length() && (Character.isLetterOrDigit(text.charAt(pos)) || text.charAt(pos) == '_')) {
                pos++;
            }
            if (start == pos) {
                throw error("an option name");
            }
            return text.substring(start, pos);
        }

        private String value() {
            if (consume('"')) {
                StringBuilder sb = new StringBuilder();
                while (pos < text.length() && text.charAt(pos) != '"') {
                    if (text.charAt(pos) == '\\' && pos + 1 < text.length()) {
                        pos++;
                    }
                    sb.append(text.charAt(pos++));
                }
                expect('"');
                return sb.toString();
            }
            int start = pos;
            while (pos < text.length() && ",)".indexOf(text.charAt(pos)) < 0) {
                pos++;
            }
            String v = text.substring(start, pos).trim();
            if (v.isEmpty()) {
                throw error("an option value");
            }
            return v;
        }

        private boolean consume(char c) {
            if (pos < text.length() && text.charAt(pos) == c) {
                pos++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!consume(c)) {
                throw error("'" + c + "'");
            }
        }

        private void skipSpaces() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        private IllegalArgumentException error(String expected) {
            String found = pos < text.length() ? "'" + text.charAt(pos) + "'" : "the end";
            return new IllegalArgumentException("Cannot parse execution provider chain '" + text + "': expected "
                    + expected + " at position " + pos + ", found " + found
                    + ". Syntax: name(key=value,...) > name > cpu");
        }
    }
}
