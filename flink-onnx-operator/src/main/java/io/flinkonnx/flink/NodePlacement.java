package io.flinkonnx.flink;

import java.io.Serializable;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/** Where one kernel of the optimized graph ran during the warm-up run, and how long it took. */
@PublicEvolving
public class NodePlacement implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The node name in the optimized graph (fused nodes get new names, e.g. {@code fused gemm_0}). */
    public String name;
    /** The operator type, e.g. {@code FusedGemm}, {@code Conv}, {@code MemcpyToHost}. */
    public String opType;
    /** The execution provider's id, e.g. {@code cpu}, {@code cuda}, {@code tensorrt}. */
    public String provider;
    /** Kernel time in the warm-up run, microseconds. */
    public long durationMicros;

    public NodePlacement() {}

    public NodePlacement(String name, String opType, String provider, long durationMicros) {
        this.name = name;
        this.opType = opType;
        this.provider = provider;
        this.durationMicros = durationMicros;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof NodePlacement)) {
            return false;
        }
        NodePlacement n = (NodePlacement) o;
        return durationMicros == n.durationMicros
                && Objects.equals(name, n.name)
                && Objects.equals(opType, n.opType)
                && Objects.equals(provider, n.provider);
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, opType, provider, durationMicros);
    }

    @Override
    public String toString() {
        return name + " (" + opType + ") on " + provider + ", " + durationMicros + " us";
    }
}
