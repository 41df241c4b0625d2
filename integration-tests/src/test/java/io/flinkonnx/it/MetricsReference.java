package io.flinkonnx.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The table of {@code docs/metrics.md} (section "Reference"): per row, the Flink metric ({@code onnx.num_inferences},
 * {@code onnx.version.<version>.model_info}) and its Prometheus names.
 */
final class MetricsReference {
    static final Path DOC = Path.of("../docs/metrics.md");

    /** Prefix of every operator metric of the library in a Prometheus scrape. */
    static final String OPERATOR_PREFIX = "flink_taskmanager_job_task_operator_onnx_";

    /** Prefix of the library's TaskManager metric in a Prometheus scrape. */
    static final String TASK_MANAGER_PREFIX = "flink_taskmanager_flinkonnx_";

    record Row(String flinkName, List<String> prometheusNames, String type) {
        /** The metric's own name, as registered ({@code counter("num_inferences")}): the last part of the Flink name. */
        String leafName() {
            return flinkName.substring(flinkName.lastIndexOf('.') + 1);
        }
    }

    private static final Pattern CODE = Pattern.compile("`([^`]+)`");

    private MetricsReference() {}

    static List<Row> rows() throws IOException {
        List<Row> rows = new ArrayList<>();
        boolean inReference = false;
        for (String line : Files.readAllLines(DOC)) {
            if (line.startsWith("## ")) {
                inReference = line.equals("## Reference");
                continue;
            }
            if (!inReference || !line.startsWith("| `")) {
                continue;
            }
            String[] cells = line.split("\\|");
            // cells[0] is empty (the line starts with '|')
            rows.add(new Row(codes(cells[1]).get(0), codes(cells[2]), cells[3].trim()));
        }
        if (rows.isEmpty()) {
            throw new IllegalStateException("No table rows under '## Reference' in " + DOC);
        }
        return rows;
    }

    /** Every Prometheus name of the table. */
    static Set<String> prometheusNames() throws IOException {
        Set<String> names = new LinkedHashSet<>();
        rows().forEach(r -> names.addAll(r.prometheusNames()));
        return names;
    }

    /**
     * The table's Prometheus name that a scraped sample name stands for: itself, or for a histogram's
     * {@code <name>_count} sample its summary's name; null when the table has neither.
     */
    static String documentedNameOf(String sampleName, Set<String> documented) {
        if (documented.contains(sampleName)) {
            return sampleName;
        }
        if (sampleName.endsWith("_count")) {
            String base = sampleName.substring(0, sampleName.length() - "_count".length());
            return documented.contains(base) ? base : null;
        }
        return null;
    }

    private static List<String> codes(String cell) {
        List<String> codes = new ArrayList<>();
        Matcher m = CODE.matcher(cell);
        while (m.find()) {
            codes.add(m.group(1));
        }
        return codes;
    }
}
