package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.flink.session.TaskManagerSessions;
import java.util.function.Supplier;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;

/**
 * The gauges a runner reports (model load time and size, open sessions, placement) and the {@code model_info}
 * gauge of a version label. Each gauge reads the runner a supplier gives at report time, so an operator whose
 * model is swapped registers them once, over whichever version serves, and a reporter reading after the
 * runner closed sees zeros rather than failing. Entry points reach this through {@link InferenceRunner}'s
 * static methods.
 */
final class RunnerMetrics {
    private RunnerMetrics() {}

    /** See {@link InferenceRunner#registerVersion}. */
    static void registerVersion(MetricGroup metrics, String label, Supplier<String> serving) {
        metrics.addGroup(InferenceRunner.VERSION_VARIABLE, label)
                .gauge("model_info", (Gauge<Integer>) () -> label.equals(serving.get()) ? 1 : 0);
    }

    /** See {@link InferenceRunner#registerMetrics(MetricGroup, Supplier)}. */
    static void register(MetricGroup metrics, Supplier<InferenceRunner<?, ?>> serving) {
        // Null-safe: a reporter may read the gauges after the operator closed its runner.
        metrics.gauge("load_model_latency_milli_secs", (Gauge<Long>) () -> {
            SharedSession s = sessionOf(serving);
            return s == null ? 0L : s.loadTimeMillis();
        });
        metrics.gauge("model_byte_size", (Gauge<Long>) () -> {
            SharedSession s = sessionOf(serving);
            return s == null ? 0L : s.modelSizeBytes();
        });
        metrics.gauge("open_sessions", (Gauge<Integer>) SessionRegistry.INSTANCE::openSessions);
        TaskManagerSessions.register(metrics); // flinkonnx.open_sessions, across jobs
        // read at every report: the first real batch may measure what the warm-up could not
        metrics.gauge("nodes_on_cpu", (Gauge<Integer>) () -> {
            FallbackReport r = reportOf(serving);
            return r == null ? 0 : r.nodesOnCpu;
        });
        metrics.gauge("cpu_time_fraction", (Gauge<Double>) () -> {
            FallbackReport r = reportOf(serving);
            return r == null ? 0.0 : r.cpuTimeFraction;
        });
    }

    private static SharedSession sessionOf(Supplier<InferenceRunner<?, ?>> serving) {
        InferenceRunner<?, ?> runner = serving.get();
        return runner == null ? null : runner.session();
    }

    private static FallbackReport reportOf(Supplier<InferenceRunner<?, ?>> serving) {
        InferenceRunner<?, ?> runner = serving.get();
        return runner == null ? null : runner.fallbackReport();
    }
}
