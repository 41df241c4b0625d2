package io.flinkonnx.flink;

import io.flinkonnx.providers.ExecutionProvider;
import io.flinkonnx.providers.ProviderResolution;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.util.OutputTag;

/**
 * Where a model's graph runs, from the execution providers asked for down to each kernel: which EPs were
 * registered or skipped (with ONNX Runtime's reason), which nodes of the optimized graph ended on CPU or
 * on an EP other than the first one asked for, their share of the warm-up time, and how many EP
 * boundaries the graph crosses. Made once per session load from ORT's profile of one warm-up run;
 * emitted by the batching operator on {@link #TAG} and logged by every entry point.
 *
 * <pre>{@code
 * SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec, policy);
 * scored.getSideOutput(FallbackReport.TAG)
 *         .filter(FallbackReport::fellBackToCpu)
 *         .map(FallbackReport::summary)
 *         .sinkTo(alerts);
 * }</pre>
 */
@PublicEvolving
public class FallbackReport implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The fallback-report side output of the batching operator (one report per subtask at start). */
    public static final OutputTag<FallbackReport> TAG =
            new OutputTag<>("onnx-fallback-report", TypeInformation.of(FallbackReport.class));

    /** The summary. */
    public enum Verdict {
        /** CPU was asked for and everything runs on CPU. */
        CPU_AS_REQUESTED,
        /** Every node runs on the first EP asked for. */
        ALL_ON_PREFERRED,
        /** Some nodes run on CPU or another EP than the first asked for. */
        PARTIAL_FALLBACK,
        /** An accelerator was asked for and every node runs on CPU. */
        ALL_ON_CPU,
        /** Placement could not be measured (the warm-up run failed); see {@link #note}. */
        UNKNOWN
    }

    public String model;
    public String modelSha256;
    public int subtask;
    public String requested;
    public String preferred;
    public List<String> registered = new ArrayList<>();
    public List<String> skipped = new ArrayList<>();
    public List<NodePlacement> nodes = new ArrayList<>();
    public int nodesOnCpu;
    public int nodesOffPreferred;
    public double cpuTimeFraction;
    public double offPreferredTimeFraction;
    /** Changes of EP between consecutive kernels in execution order. */
    public int epBoundaries;
    /** Copy nodes ORT inserted between EPs ({@code MemcpyToHost}/{@code MemcpyFromHost}). */
    public int copyNodes;

    public Verdict verdict;
    public String note;

    public FallbackReport() {}

    @Internal
    public static FallbackReport of(
            String model,
            String sha256,
            int subtask,
            ProviderResolution resolution,
            List<NodePlacement> placements,
            String note) {
        FallbackReport r = new FallbackReport();
        r.model = model;
        r.modelSha256 = sha256;
        r.subtask = subtask;
        r.requested = resolution.requested().toString();
        ExecutionProvider preferred = resolution.requested().preferred();
        r.preferred = preferred.id();
        r.registered =
                resolution.registered().stream().map(ExecutionProvider::id).collect(Collectors.toList());
        r.skipped = resolution.skipped().stream()
                .map(a -> a.provider().id() + ": " + a.errorCode() + ": " + a.message())
                .collect(Collectors.toList());
        r.note = note;
        if (placements == null) {
            r.verdict = Verdict.UNKNOWN;
            return r;
        }
        r.nodes = new ArrayList<>(placements);
        long total = 0;
        long cpu = 0;
        long off = 0;
        String previous = null;
        for (NodePlacement n : placements) {
            total += n.durationMicros;
            if (n.provider.equals("cpu")) {
                r.nodesOnCpu++;
                cpu += n.durationMicros;
            }
            if (!n.provider.equals(r.preferred)) {
                r.nodesOffPreferred++;
                off += n.durationMicros;
            }
            if (previous != null && !previous.equals(n.provider)) {
                r.epBoundaries++;
            }
            if (n.opType.startsWith("Memcpy")) {
                r.copyNodes++;
            }
            previous = n.provider;
        }
        r.cpuTimeFraction = total == 0 ? (r.nodesOnCpu > 0 ? 1 : 0) : (double) cpu / total;
        r.offPreferredTimeFraction = total == 0 ? (r.nodesOffPreferred > 0 ? 1 : 0) : (double) off / total;
        if (preferred == ExecutionProvider.CPU) {
            r.verdict = Verdict.CPU_AS_REQUESTED;
        } else if (r.nodesOffPreferred == 0 && !placements.isEmpty()) {
            r.verdict = Verdict.ALL_ON_PREFERRED;
        } else if (r.nodesOnCpu == placements.size()) {
            r.verdict = Verdict.ALL_ON_CPU;
        } else {
            r.verdict = Verdict.PARTIAL_FALLBACK;
        }
        return r;
    }

    /** Whether an accelerator was asked for and some of the work fell to CPU. */
    public boolean fellBackToCpu() {
        return verdict == Verdict.ALL_ON_CPU || (verdict == Verdict.PARTIAL_FALLBACK && nodesOnCpu > 0);
    }

    /** The nodes that run on CPU although an accelerator was asked for. */
    public List<NodePlacement> cpuNodes() {
        return nodes.stream().filter(n -> n.provider.equals("cpu")).collect(Collectors.toList());
    }

    /** One paragraph for the log. */
    public String summary() {
        StringBuilder sb = new StringBuilder();
        sb.append(verdict)
                .append(" for ")
                .append(model)
                .append(" (subtask ")
                .append(subtask)
                .append("): asked ")
                .append(requested)
                .append(", registered ")
                .append(registered);
        if (!skipped.isEmpty()) {
            sb.append(", skipped ").append(skipped);
        }
        sb.append("; ")
                .append(nodes.size())
                .append(" nodes, ")
                .append(nodesOnCpu)
                .append(" on cpu (")
                .append(String.format(Locale.ROOT, "%.0f%%", 100 * cpuTimeFraction))
                .append(" of warm-up time), ")
                .append(nodesOffPreferred)
                .append(" off ")
                .append(preferred)
                .append(", ")
                .append(epBoundaries)
                .append(" EP boundaries, ")
                .append(copyNodes)
                .append(" copy nodes");
        if (note != null) {
            sb.append("; ").append(note);
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return "FallbackReport{" + summary() + "}";
    }
}
