package io.flinkonnx.model;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A named graph input or output: its kind, element type, shape, and which axis (if any) is the batch
 * axis.
 */
@PublicEvolving
public final class TensorSpec implements Serializable {
    private static final long serialVersionUID = 1L;

    /** What an ONNX value is: a dense tensor, or one of the container types ML models use. */
    public enum Kind {
        TENSOR,
        SEQUENCE,
        MAP,
        OPTIONAL,
        SPARSE_TENSOR,
        UNKNOWN
    }

    /** Batch axis value meaning "this tensor has no batch axis". */
    public static final int NO_BATCH_AXIS = -1;

    private final String name;
    private final Kind kind;
    private final ElementType elementType;
    private final List<Dim> dims;
    private final boolean shapeKnown;
    private final int batchAxis;
    /** Derived, so not serialized: computed again after deserialization. */
    private transient List<Dim> recordDims;

    public TensorSpec(
            String name, Kind kind, ElementType elementType, List<Dim> dims, boolean shapeKnown, int batchAxis) {
        this.name = Objects.requireNonNull(name, "name");
        this.kind = Objects.requireNonNull(kind, "kind");
        this.elementType = Objects.requireNonNull(elementType, "elementType");
        this.dims = List.copyOf(dims);
        this.shapeKnown = shapeKnown;
        if (batchAxis != NO_BATCH_AXIS && (batchAxis < 0 || batchAxis >= this.dims.size())) {
            throw new IllegalArgumentException(
                    "Batch axis " + batchAxis + " is outside the shape " + shapeString() + " of '" + name + "'");
        }
        this.batchAxis = batchAxis;
        this.recordDims = recordDims(this.dims, batchAxis);
    }

    /**
     * A dense tensor spec whose batch axis follows the default rule: the first axis when it is symbolic
     * or unknown.
     */
    public static TensorSpec tensor(String name, ElementType type, List<Dim> dims) {
        return new TensorSpec(name, Kind.TENSOR, type, dims, true, defaultBatchAxis(dims));
    }

    /** The default rule: a symbolic or unknown first dimension is the batch axis. */
    public static int defaultBatchAxis(List<Dim> dims) {
        return !dims.isEmpty() && !dims.get(0).isFixed() ? 0 : NO_BATCH_AXIS;
    }

    public String name() {
        return name;
    }

    public Kind kind() {
        return kind;
    }

    public ElementType elementType() {
        return elementType;
    }

    /** The shape, one {@link Dim} per axis; empty for a scalar or when the shape is unknown. */
    public List<Dim> dims() {
        return dims;
    }

    /** False when the model declares no shape at all (rank unknown). */
    public boolean isShapeKnown() {
        return shapeKnown;
    }

    public int rank() {
        return dims.size();
    }

    /** The batch axis, or {@link #NO_BATCH_AXIS}. */
    public int batchAxis() {
        return batchAxis;
    }

    public boolean hasBatchAxis() {
        return batchAxis != NO_BATCH_AXIS;
    }

    /** This spec with another batch axis ({@link #NO_BATCH_AXIS} for none). */
    public TensorSpec withBatchAxis(int axis) {
        return new TensorSpec(name, kind, elementType, dims, shapeKnown, axis);
    }

    /** The shape of one record: the dims without the batch axis (computed once: it is asked per record). */
    public List<Dim> recordDims() {
        List<Dim> r = recordDims;
        if (r == null) {
            r = recordDims(dims, batchAxis); // after deserialization; racing threads compute the same list
            recordDims = r;
        }
        return r;
    }

    private static List<Dim> recordDims(List<Dim> dims, int batchAxis) {
        if (batchAxis == NO_BATCH_AXIS) {
            return dims;
        }
        List<Dim> copy = new ArrayList<>(dims);
        copy.remove(batchAxis);
        return List.copyOf(copy);
    }

    /** {@code [batch,3,224,224]}, or {@code [unknown rank]}. */
    public String shapeString() {
        if (!shapeKnown) {
            return "[unknown rank]";
        }
        return dims.stream().map(Dim::toString).collect(Collectors.joining(",", "[", "]"));
    }

    /** {@code input:FLOAT[batch,64]}. */
    @Override
    public String toString() {
        String type = kind == Kind.TENSOR ? elementType.name() : kind + "<" + elementType + ">";
        return name + ":" + type + shapeString();
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof TensorSpec)) {
            return false;
        }
        TensorSpec t = (TensorSpec) o;
        return name.equals(t.name)
                && kind == t.kind
                && elementType == t.elementType
                && dims.equals(t.dims)
                && shapeKnown == t.shapeKnown
                && batchAxis == t.batchAxis;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, kind, elementType, dims, batchAxis);
    }
}
