package io.flinkonnx.flink;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.util.OutputTag;

/**
 * Outputs compared with reference outputs: per output the largest absolute and relative errors, the share
 * of elements outside tolerance and, for classifier outputs, top-1 agreement. Flagged when any output is
 * out of tolerance. Emitted by the batching operator on {@link #TAG} at the configured sampling rate, and
 * by every entry point as gauges and in the log.
 *
 * <pre>{@code
 * OnnxInferenceSpec<Txn, Scored> spec = OnnxInference.<Txn>builder("fraud-int8.onnx")
 *         .driftAgainstModel("fraud-fp32.onnx", 0.01)      // shadow run on 1% of batches
 *         .encoder(...).decoder(..., type).build();
 * DataStream<DriftReport> flagged = OnnxInference.batched(txns, spec, policy)
 *         .getSideOutput(DriftReport.TAG).filter(r -> r.flagged);
 * }</pre>
 */
@PublicEvolving
public class DriftReport implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The drift-report side output of the batching operator. */
    public static final OutputTag<DriftReport> TAG =
            new OutputTag<>("onnx-drift-report", TypeInformation.of(DriftReport.class));

    /** What the outputs were compared with. */
    public enum Source {
        /** A reference model run in shadow on the same records. */
        SHADOW_MODEL,
        /** ONNX test-data-set golden vectors. */
        GOLDEN_VECTORS,
        /** Reference outputs carried by the records. */
        RECORD_REFERENCE
    }

    public String model;
    public int subtask;
    public Source source;
    /** The reference model URI, golden-vector set, or "records". */
    public String reference;
    /** Records (or golden-vector sets) compared. */
    public long records;

    public List<OutputDrift> outputs = new ArrayList<>();
    public boolean flagged;
    public long timestampMillis;

    public DriftReport() {}

    /** The largest error of any output, for gauges. */
    public double maxAbsError() {
        return outputs.stream().mapToDouble(o -> o.maxAbsError).max().orElse(0);
    }

    public double maxRelError() {
        return outputs.stream().mapToDouble(o -> o.maxRelError).max().orElse(0);
    }

    public double fractionOutside() {
        return outputs.stream().mapToDouble(o -> o.fractionOutside).max().orElse(0);
    }

    @Override
    public String toString() {
        return "DriftReport{" + (flagged ? "FLAGGED " : "") + model + " (subtask " + subtask + ") vs " + source + " "
                + reference + ", " + records + " records: " + outputs + "}";
    }
}
