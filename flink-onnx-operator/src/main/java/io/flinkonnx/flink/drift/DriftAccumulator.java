package io.flinkonnx.flink.drift;

import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.flink.tensor.ElementCodec;
import io.flinkonnx.model.ElementType;
import java.lang.reflect.Array;
import org.apache.flink.annotation.Internal;

/** Accumulates element-wise comparisons of one output with its reference. */
@Internal
public final class DriftAccumulator {
    private final String output;
    private final ElementType type;
    private final ElementCodec outputCodec;
    private final double rtol;
    private final double atol;
    /** Classes per row for top-1 agreement, 0 when the output is not classifier-shaped. */
    private final int classes;

    private long elements;
    private long outside;
    private double maxAbs;
    private double maxRel;
    private long rows;
    private long rowsAgreeing;

    public DriftAccumulator(String output, ElementType type, DriftTolerance tolerance, int classes) {
        this.output = output;
        this.type = type;
        this.outputCodec = ElementCodec.ofOutput(type);
        this.rtol = tolerance.rtolFor(type);
        this.atol = tolerance.atolFor(type);
        this.classes = DriftTolerance.isFloating(type) ? classes : 0;
    }

    /**
     * Compares flat arrays of the same class and length.
     *
     * @throws IllegalArgumentException when they differ in type or length (a reference that cannot be right)
     */
    public void add(Object actual, Object reference) {
        if (actual == null || reference == null || actual.getClass() != reference.getClass()) {
            throw new IllegalArgumentException(
                    "Output '" + output + "' is " + describe(actual) + " but its reference is " + describe(reference));
        }
        int n = Array.getLength(actual);
        if (n != Array.getLength(reference)) {
            throw new IllegalArgumentException(
                    "Output '" + output + "' has " + n + " values but its reference has " + Array.getLength(reference));
        }
        if (actual instanceof String[] || actual instanceof boolean[]) {
            for (int i = 0; i < n; i++) {
                boolean same = Array.get(actual, i).equals(Array.get(reference, i));
                compare(same ? 0 : 1, same ? 0 : 1, same);
            }
            return;
        }
        for (int i = 0; i < n; i++) {
            double a = value(actual, i);
            double r = value(reference, i);
            if (Double.isNaN(a) || Double.isNaN(r)) {
                boolean both = Double.isNaN(a) && Double.isNaN(r);
                compare(both ? 0 : Double.POSITIVE_INFINITY, both ? 0 : Double.POSITIVE_INFINITY, both);
                continue;
            }
            double abs = Math.abs(a - r);
            double rel = r != 0 ? abs / Math.abs(r) : (abs == 0 ? 0 : Double.POSITIVE_INFINITY);
            compare(abs, rel, abs <= atol + rtol * Math.abs(r));
        }
        if (classes >= 2 && n % classes == 0) {
            for (int row = 0; row < n / classes; row++) {
                rows++;
                if (argmax(actual, row) == argmax(reference, row)) {
                    rowsAgreeing++;
                }
            }
        }
    }

    private void compare(double abs, double rel, boolean within) {
        elements++;
        maxAbs = Math.max(maxAbs, abs);
        maxRel = Math.max(maxRel, rel);
        if (!within) {
            outside++;
        }
    }

    /** One element as a number, by the output's codec: UINT8 unsigned (0..255), INT8 signed, and so on. */
    private double value(Object array, int i) {
        ElementCodec codec =
                array.getClass() == outputCodec.arrayType() ? outputCodec : ElementCodec.ofArray(array.getClass());
        if (codec == null) {
            throw new IllegalArgumentException(
                    "Cannot compare values of " + array.getClass().getSimpleName());
        }
        return codec.number(array, i);
    }

    private int argmax(Object values, int row) {
        int best = 0;
        double bestValue = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < classes; c++) {
            double v = value(values, row * classes + c);
            if (v > bestValue) {
                bestValue = v;
                best = c;
            }
        }
        return best;
    }

    private static String describe(Object o) {
        return o == null ? "missing" : o.getClass().getSimpleName();
    }

    public OutputDrift result() {
        OutputDrift d = new OutputDrift();
        d.output = output;
        d.elements = elements;
        d.maxAbsError = maxAbs;
        d.maxRelError = maxRel;
        d.fractionOutside = elements == 0 ? 0 : (double) outside / elements;
        d.top1Agreement = rows == 0 ? Double.NaN : (double) rowsAgreeing / rows;
        d.rtol = rtol;
        d.atol = atol;
        d.withinTolerance = outside == 0;
        return d;
    }

    public ElementType type() {
        return type;
    }
}
