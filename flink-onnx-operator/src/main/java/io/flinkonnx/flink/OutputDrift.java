package io.flinkonnx.flink;

import java.io.Serializable;
import java.util.Locale;
import org.apache.flink.annotation.PublicEvolving;

/** How one output compares with its reference over the compared elements. */
@PublicEvolving
public class OutputDrift implements Serializable {
    private static final long serialVersionUID = 1L;

    public String output;
    public long elements;
    public double maxAbsError;
    /** {@code |out - ref| / |ref|}; infinite where a reference of 0 met a non-zero output. */
    public double maxRelError;
    /** Share of elements outside {@code atol + rtol * |ref|}. */
    public double fractionOutside;
    /** For classifier-shaped outputs ([batch, classes]): share of rows whose argmax agrees; NaN otherwise. */
    public double top1Agreement = Double.NaN;

    public double rtol;
    public double atol;
    public boolean withinTolerance;

    public OutputDrift() {}

    @Override
    public String toString() {
        return String.format(
                Locale.ROOT,
                "%s: max abs %.3g, max rel %.3g, %.4f%% outside (rtol %.0e, atol %.0e)%s",
                output,
                maxAbsError,
                maxRelError,
                100 * fractionOutside,
                rtol,
                atol,
                Double.isNaN(top1Agreement) ? "" : String.format(Locale.ROOT, ", top-1 agreement %.4f", top1Agreement));
    }
}
