package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The Grafana dashboard of {@code docker/} and the two parsers that check it against a real scrape in {@code
 * StandaloneClusterIT}: PromQL metric-name extraction and the Prometheus text format.
 */
class GrafanaDashboardTest {
    static final Path DASHBOARD = Path.of("../docker/grafana/dashboards/flink-onnx.json");

    @Test
    void promQlNamesAreTheSelectorsNotFunctionsLabelsKeywordsDurationsOrVariables() {
        assertThat(PromQl.metricNames("sum by (job_name, operator_name) (rate(flink_a_total{job_name=~\"$job\","
                        + " quantile=\"0.5\"}[$__rate_interval]))"))
                .containsExactly("flink_a_total");
        assertThat(PromQl.metricNames(
                        "sum(rate(a[5m])) / on(job_id) group_left sum without (x) (b offset 1h) > bool 0"))
                .containsExactly("a", "b");
        assertThat(PromQl.metricNames("count_values(\"v\", c) or histogram_quantile(0.99, d) * 1e-3 unless ${var}"))
                .containsExactly("c", "d");
        assertThat(PromQl.metricNames("max by (version) (m:recorded == 1)")).containsExactly("m:recorded");
        assertThat(PromQl.selectors("max(a{quantile=\"0.99\", job_name=~\"$job\", x!=\"y\", v=\"$v\"}) + b{c=\"d\"}"))
                .containsExactly(
                        new PromQl.Selector("a", java.util.Map.of("quantile", "0.99")),
                        new PromQl.Selector("b", java.util.Map.of("c", "d")));
    }

    @Test
    void everyDashboardQueryNamesOnlyFlinkMetricsAndReadsThePrometheusDatasource() throws Exception {
        JsonNode dashboard = new ObjectMapper().readTree(DASHBOARD.toFile());
        List<String> exprs = PromQl.dashboardExpressions(dashboard);
        assertThat(exprs).hasSizeGreaterThan(15);
        for (String expr : exprs) {
            assertThat(PromQl.metricNames(expr)).as(expr).isNotEmpty().allMatch(n -> n.startsWith("flink_"));
        }
        Set<String> names = PromQl.dashboardMetricNames(DASHBOARD);
        // what the issue asks the dashboard to show
        assertThat(names)
                .contains(
                        MetricsReference.OPERATOR_PREFIX + "num_inferences",
                        MetricsReference.OPERATOR_PREFIX + "failed_records",
                        MetricsReference.OPERATOR_PREFIX + "inference_request_batch_size",
                        MetricsReference.OPERATOR_PREFIX + "inference_batch_latency_micro_secs",
                        MetricsReference.OPERATOR_PREFIX + "version_model_info",
                        MetricsReference.TASK_MANAGER_PREFIX + "open_sessions",
                        MetricsReference.OPERATOR_PREFIX + "nodes_on_cpu",
                        MetricsReference.OPERATOR_PREFIX + "drift_max_abs_error");
        for (JsonNode panel : dashboard.path("panels")) {
            if (!panel.path("type").asText().equals("row")) {
                assertThat(panel.at("/datasource/uid").asText())
                        .as(panel.path("title").asText())
                        .isEqualTo("prometheus");
            }
        }
        assertThat(dashboard.path("uid").asText()).isEqualTo("flink-onnx");
    }

    @Test
    void theTextFormatParserReadsNamesLabelsWithEscapesAndSpecialValues() {
        List<PrometheusScrape.Sample> samples = PrometheusScrape.parse(
                "tm-1",
                String.join(
                        "\n",
                        "# HELP a_metric help (scope: x)",
                        "# TYPE a_metric gauge",
                        "a_metric{job_name=\"flink-onnx Kafka scoring\",version=\"fraud-mlp\",q=\"a\\\"b\\\\c\",} 2.0",
                        "b_summary{quantile=\"0.5\"} NaN",
                        "b_summary_count 7.0",
                        "c +Inf",
                        ""));
        assertThat(samples).hasSize(4);
        assertThat(samples.get(0).name()).isEqualTo("a_metric");
        assertThat(samples.get(0).labels()).containsEntry("job_name", "flink-onnx Kafka scoring");
        assertThat(samples.get(0).label("version")).isEqualTo("fraud-mlp");
        assertThat(samples.get(0).label("q")).isEqualTo("a\"b\\c");
        assertThat(samples.get(0).value()).isEqualTo(2.0);
        assertThat(samples.get(1).value()).isNaN();
        assertThat(samples.get(2).labels()).isEmpty();
        assertThat(samples.get(3).value()).isInfinite();
    }
}
