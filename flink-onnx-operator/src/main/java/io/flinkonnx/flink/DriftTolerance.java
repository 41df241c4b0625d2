package io.flinkonnx.flink;

import static org.apache.flink.util.Preconditions.checkArgument;

import io.flinkonnx.model.ElementType;
import java.io.Serializable;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.PublicEvolving;

/**
 * How far outputs may be from their reference: element {@code i} is within tolerance when
 * {@code |out - ref| <= atol + rtol * |ref|}. The rtol/atol given here apply to floating outputs
 * (default: rtol 1e-3, atol 1e-5 for float32, ONNX Runtime's own advice); INT8/UINT8 outputs allow 1
 * (quantization rounding); other integer, BOOL and STRING outputs must match exactly.
 *
 * <pre>{@code
 * builder.driftTolerance(DriftTolerance.of(1e-2, 1e-4));   // looser, for an fp16 model against fp32
 * }</pre>
 */
@PublicEvolving
public final class DriftTolerance implements Serializable {
    private static final long serialVersionUID = 1L;

    private final double rtol;
    private final double atol;

    private DriftTolerance(double rtol, double atol) {
        checkArgument(rtol >= 0 && atol >= 0, "rtol and atol must be >= 0, got rtol=%s atol=%s", rtol, atol);
        this.rtol = rtol;
        this.atol = atol;
    }

    /**
     * rtol 1e-3, atol 1e-5.
     *
     * @return the default tolerance
     */
    public static DriftTolerance defaults() {
        return new DriftTolerance(1e-3, 1e-5);
    }

    /**
     * Tolerances for floating outputs.
     *
     * @param rtol the relative tolerance, >= 0
     * @param atol the absolute tolerance, >= 0
     * @return the tolerance
     * @throws IllegalArgumentException when {@code rtol} or {@code atol} is negative (or NaN)
     */
    public static DriftTolerance of(double rtol, double atol) {
        return new DriftTolerance(rtol, atol);
    }

    /**
     * The relative tolerance of floating outputs.
     *
     * @return rtol, >= 0
     */
    public double rtol() {
        return rtol;
    }

    /**
     * The absolute tolerance of floating outputs.
     *
     * @return atol, >= 0
     */
    public double atol() {
        return atol;
    }

    /**
     * rtol for outputs of {@code type}.
     *
     * @param type the output's element type
     * @return {@link #rtol()} for floating types, else 0
     */
    @Internal
    public double rtolFor(ElementType type) {
        return isFloating(type) ? rtol : 0;
    }

    /**
     * atol for outputs of {@code type}.
     *
     * @param type the output's element type
     * @return {@link #atol()} for floating types, 1 for INT8/UINT8, else 0
     */
    @Internal
    public double atolFor(ElementType type) {
        if (isFloating(type)) {
            return atol;
        }
        return type == ElementType.INT8 || type == ElementType.UINT8 ? 1 : 0;
    }

    /**
     * Whether {@code type} is a floating type (FLOAT, DOUBLE, FLOAT16, BFLOAT16).
     *
     * @param type an element type
     * @return true for a floating type
     */
    @Internal
    public static boolean isFloating(ElementType type) {
        return type == ElementType.FLOAT
                || type == ElementType.DOUBLE
                || type == ElementType.FLOAT16
                || type == ElementType.BFLOAT16;
    }

    @Override
    public String toString() {
        return "rtol=" + rtol + ", atol=" + atol;
    }
}
