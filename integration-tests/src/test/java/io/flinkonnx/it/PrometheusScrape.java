package io.flinkonnx.it;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * One scrape of Prometheus endpoints, parsed from the text exposition format (version 0.0.4, what Flink's
 * {@code PrometheusReporter} serves): {@code name{label="value",...} value}, {@code #} lines skipped, label values
 * unescaped ({@code \\}, {@code \"}, {@code \n}).
 */
final class PrometheusScrape {
    /** One sample: a metric name, its labels and its value; {@code source} is the endpoint it came from. */
    record Sample(String source, String name, Map<String, String> labels, double value) {
        String label(String key) {
            return labels.get(key);
        }
    }

    private static final HttpClient HTTP =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    private final List<Sample> samples;

    PrometheusScrape(List<Sample> samples) {
        this.samples = List.copyOf(samples);
    }

    /** GET http://127.0.0.1:PORT/metrics of every source (name -> port); an endpoint that does not answer is skipped. */
    static PrometheusScrape of(Map<String, Integer> ports) {
        List<Sample> all = new ArrayList<>();
        ports.forEach((source, port) -> {
            String body = fetch(port);
            if (body != null) {
                all.addAll(parse(source, body));
            }
        });
        return new PrometheusScrape(all);
    }

    /** The exposition text of http://127.0.0.1:PORT/metrics, or null where it does not answer 200. */
    static String fetch(int port) {
        try {
            HttpResponse<String> r = HTTP.send(
                    HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                            .timeout(Duration.ofSeconds(5))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            return r.statusCode() == 200 ? r.body() : null;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static List<Sample> parse(String source, String text) {
        List<Sample> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            out.add(parseLine(source, line));
        }
        return out;
    }

    private static Sample parseLine(String source, String line) {
        int i = 0;
        while (i < line.length() && line.charAt(i) != '{' && line.charAt(i) != ' ') {
            i++;
        }
        String name = line.substring(0, i);
        Map<String, String> labels = new LinkedHashMap<>();
        if (i < line.length() && line.charAt(i) == '{') {
            i++;
            while (line.charAt(i) != '}') {
                int eq = line.indexOf('=', i);
                String key = line.substring(i, eq).trim();
                if (line.charAt(eq + 1) != '"') {
                    throw new IllegalArgumentException("Label value not quoted: " + line);
                }
                StringBuilder value = new StringBuilder();
                int j = eq + 2;
                for (; line.charAt(j) != '"'; j++) {
                    char c = line.charAt(j);
                    if (c == '\\') {
                        char next = line.charAt(++j);
                        value.append(next == 'n' ? '\n' : next);
                    } else {
                        value.append(c);
                    }
                }
                labels.put(key, value.toString());
                i = j + 1;
                if (line.charAt(i) == ',') {
                    i++;
                }
            }
            i++;
        }
        String[] rest = line.substring(i).trim().split("\\s+");
        return new Sample(source, name, labels, parseValue(rest[0]));
    }

    private static double parseValue(String v) {
        return switch (v) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            case "NaN" -> Double.NaN;
            default -> Double.parseDouble(v);
        };
    }

    List<Sample> samples() {
        return samples;
    }

    /** Every sample name in this scrape. */
    Set<String> names() {
        Set<String> names = new TreeSet<>();
        samples.forEach(s -> names.add(s.name()));
        return names;
    }

    /** The samples named {@code name} that {@code filter} accepts. */
    List<Sample> get(String name, Predicate<Sample> filter) {
        return samples.stream()
                .filter(s -> s.name().equals(name) && filter.test(s))
                .toList();
    }

    static double sum(Collection<Sample> samples) {
        return samples.stream().mapToDouble(Sample::value).sum();
    }

    @Override
    public String toString() {
        return samples.size() + " samples";
    }
}
