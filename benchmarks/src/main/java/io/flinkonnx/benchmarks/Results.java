package io.flinkonnx.benchmarks;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The figures the benchmark tracks from run to run, printed as its last line: {@code BENCH} and one JSON
 * object with exactly {@link #KEYS}. A key this run did not measure is {@code null}. The same object keeps
 * what {@link BenchmarkCharts} draws (rates per path and latency distributions) and a line describing the run,
 * so the charts and the BENCH line come from one run.
 */
final class Results {
    /** The keys, in order, with the target each is held to (performance issue 15). */
    static final Map<String, String> KEYS = new LinkedHashMap<>();

    static {
        KEYS.put("mlp_b64_operator_over_raw", ">= 0.92");
        KEYS.put("mlp_b64_operator_over_map", ">= 5");
        KEYS.put("cnn_operator_over_raw", ">= 0.95");
        KEYS.put("two_slots_over_one_mlp", ">= 1.5");
        KEYS.put("two_slots_over_one_cnn", ">= 1.8");
        KEYS.put("mlp_cores_used_at_one_slot", "report; ideally near 1.0");
        KEYS.put("ragged_bucketed_over_padded", ">= 1.5");
        KEYS.put("text_tokenize_share", "report");
        KEYS.put("text_bucketed_over_padded", ">= 1.5");
        KEYS.put("pipeline_flink_over_kafka_streams", ">= 1.0");
        KEYS.put("pipeline_flink_over_plain_loop", "report");
        KEYS.put("latency_p99_ms", "<= latency_bound_ms");
        KEYS.put("latency_bound_ms", "max delay + one batch's compute");
        KEYS.put("per_tm_sharing_rss_saving_mb", "report");
        KEYS.put("sql_async_over_operator", ">= 0.7");
        KEYS.put("sql_sync_over_operator", "report");
        KEYS.put("sql_scalar_over_operator", ">= 0.5");
        KEYS.put("many_models_zipf_over_single", "report");
        KEYS.put("many_models_loads_per_1k", "report");
        KEYS.put("global_pool_over_per_session", "report");
    }

    /** Keys no run can measure yet, and why (README says the same): none today. */
    static final Map<String, String> NOT_MEASURABLE = Map.of();

    private final Map<String, Double> values = new LinkedHashMap<>();
    private final List<BenchmarkCharts.ThroughputRow> throughput = new ArrayList<>();
    private final List<BenchmarkCharts.LatencySeries> latency = new ArrayList<>();
    private String description;

    Results() {
        KEYS.keySet().forEach(k -> values.put(k, null));
    }

    void put(String key, double value) {
        if (!KEYS.containsKey(key)) {
            throw new IllegalArgumentException("Not a BENCH key: " + key);
        }
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(key + " is not a number: " + value);
        }
        values.put(key, value);
    }

    /** A key's value, null where unmeasured. */
    Double value(String key) {
        if (!KEYS.containsKey(key)) {
            throw new IllegalArgumentException("Not a BENCH key: " + key);
        }
        return values.get(key);
    }

    /** Records per second of raw ORT, the batching operator and the per-record map on one model and batch. */
    void throughput(String model, int batch, double rawOrt, double operator, double perRecordMap) {
        throughput.add(new BenchmarkCharts.ThroughputRow(model, batch, rawOrt, operator, perRecordMap));
    }

    List<BenchmarkCharts.ThroughputRow> throughput() {
        return List.copyOf(throughput);
    }

    void latency(BenchmarkCharts.LatencySeries series) {
        latency.add(series);
    }

    List<BenchmarkCharts.LatencySeries> latency() {
        return List.copyOf(latency);
    }

    /** One line about the run (date, machine, load, flags): the charts' caption. */
    void describe(String line) {
        description = line;
    }

    String description() {
        return description;
    }

    /** One JSON object, keys in {@link #KEYS} order, numbers with four significant digits, null where unmeasured. */
    String json() {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, Double> e : values.entrySet()) {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append('"').append(e.getKey()).append("\": ").append(format(e.getValue()));
        }
        return sb.append('}').toString();
    }

    /** The same figures as a Markdown table with their targets. */
    String table() {
        StringBuilder sb = new StringBuilder("| key | this run | target |\n|---|---|---|\n");
        for (Map.Entry<String, Double> e : values.entrySet()) {
            String value = format(e.getValue());
            if (e.getValue() == null && NOT_MEASURABLE.containsKey(e.getKey())) {
                value = "null (" + NOT_MEASURABLE.get(e.getKey()) + ")";
            } else if (e.getValue() == null) {
                value = "null (not run: see the flags)";
            }
            sb.append("| `")
                    .append(e.getKey())
                    .append("` | ")
                    .append(value)
                    .append(" | ")
                    .append(KEYS.get(e.getKey()))
                    .append(" |\n");
        }
        return sb.toString().trim();
    }

    static String format(Double v) {
        if (v == null) {
            return "null";
        }
        double a = Math.abs(v);
        int decimals = a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4;
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }
}
