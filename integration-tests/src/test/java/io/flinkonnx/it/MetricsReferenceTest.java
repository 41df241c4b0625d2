package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * {@code docs/metrics.md} against the code: the metric names the operator and SQL modules register (every {@code
 * counter(...)}, {@code gauge(...)}, {@code histogram(...)} and {@code meter(...)} call of their main sources, the
 * name a literal or a constant of that file) are exactly the table's, and each row's Prometheus names are the ones
 * Flink's reporter derives from its Flink name. {@code StandaloneClusterIT} checks the other way round on a real
 * cluster: every library metric in a Prometheus scrape is a row.
 */
class MetricsReferenceTest {
    private static final List<Path> SOURCES =
            List.of(Path.of("../flink-onnx-operator/src/main/java"), Path.of("../flink-onnx-sql/src/main/java"));
    private static final Pattern REGISTRATION =
            Pattern.compile("\\.(counter|gauge|histogram|meter)\\(\\s*(?:\"([^\"]+)\"|([A-Z][A-Z0-9_]*)\\s*[,)])");
    private static final Pattern CONSTANT = Pattern.compile("static final String ([A-Z][A-Z0-9_]*) = \"([^\"]*)\";");

    /** Metric name -> the files that register it. */
    private static Map<String, Set<String>> registeredInCode() throws IOException {
        Map<String, Set<String>> names = new TreeMap<>();
        for (Path root : SOURCES) {
            try (Stream<Path> files = Files.walk(root)) {
                for (Path file :
                        files.filter(f -> f.toString().endsWith(".java")).toList()) {
                    String source = Files.readString(file);
                    Map<String, String> constants = new HashMap<>();
                    Matcher c = CONSTANT.matcher(source);
                    while (c.find()) {
                        constants.put(c.group(1), c.group(2));
                    }
                    Matcher m = REGISTRATION.matcher(source);
                    while (m.find()) {
                        String name = m.group(2) != null ? m.group(2) : constants.get(m.group(3));
                        assertThat(name)
                                .as("metric name constant %s in %s", m.group(3), file)
                                .isNotNull();
                        names.computeIfAbsent(name, n -> new TreeSet<>())
                                .add(file.getFileName().toString());
                    }
                }
            }
        }
        return names;
    }

    @Test
    void theTableListsExactlyTheMetricNamesTheCodeRegisters() throws Exception {
        Map<String, Set<String>> inCode = registeredInCode();
        assertThat(inCode)
                .as("sanity: the scan finds the batching operator's metrics")
                .containsKeys("num_inferences", "inference_request_batch_size", "model_info", "open_sessions");
        Set<String> inTable = new TreeSet<>();
        MetricsReference.rows().forEach(r -> inTable.add(r.leafName()));
        assertThat(inTable)
                .as("metric names in docs/metrics.md vs. registered in code (%s)", inCode)
                .containsExactlyInAnyOrderElementsOf(inCode.keySet());
    }

    @Test
    void eachRowsPrometheusNamesAreWhatFlinksReporterMakesOfItsFlinkName() throws Exception {
        for (MetricsReference.Row row : MetricsReference.rows()) {
            String flink = row.flinkName();
            String expected;
            if (flink.startsWith("flinkonnx.")) {
                expected = "flink_taskmanager_" + flink.replace('.', '_');
            } else {
                // onnx.<metric>, or onnx.<key>.<value>.<metric>: a key/value group keeps its key, its value is a label
                String[] parts = flink.split("\\.");
                expected =
                        MetricsReference.OPERATOR_PREFIX + (parts.length == 4 ? parts[1] + "_" + parts[3] : parts[1]);
            }
            assertThat(row.prometheusNames()).as(flink).isNotEmpty();
            assertThat(row.prometheusNames().get(0)).as(flink).isEqualTo(expected);
            for (String other :
                    row.prometheusNames().subList(1, row.prometheusNames().size())) {
                // the per-model variant: under the key/value group model=<label>
                assertThat(other).as(flink).isEqualTo(MetricsReference.OPERATOR_PREFIX + "model_" + row.leafName());
            }
        }
    }
}
