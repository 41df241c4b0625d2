package io.flinkonnx.flink.drift;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.model.ElementType;
import org.junit.jupiter.api.Test;

class DriftAccumulatorTest {

    @Test
    void floatErrorsAgainstDefaultTolerance() {
        DriftAccumulator acc = new DriftAccumulator("y", ElementType.FLOAT, DriftTolerance.defaults(), 0);
        // |diff| vs atol 1e-5 + rtol 1e-3 * |ref|: 2.0 +- 1e-3 is inside (bound 2.00001e-3), 1.0 + 0.01 is outside
        acc.add(new float[] {2.001f, 1.01f, 0f, 5f}, new float[] {2f, 1f, 0f, 5f});
        OutputDrift d = acc.result();
        assertThat(d.elements).isEqualTo(4);
        assertThat(d.maxAbsError).isCloseTo(0.01, within(1e-6));
        assertThat(d.maxRelError).isCloseTo(0.01, within(1e-6));
        assertThat(d.fractionOutside).isEqualTo(0.25);
        assertThat(d.withinTolerance).isFalse();
        assertThat(d.top1Agreement).isNaN();
    }

    @Test
    void integersMustMatchExactlyAndInt8AllowsOne() {
        DriftAccumulator ints = new DriftAccumulator("c", ElementType.INT64, DriftTolerance.of(0.5, 0.5), 0);
        ints.add(new long[] {1, 2, 3}, new long[] {1, 2, 4});
        assertThat(ints.result().fractionOutside).isCloseTo(1 / 3.0, within(1e-9));

        DriftAccumulator q = new DriftAccumulator("q", ElementType.INT8, DriftTolerance.defaults(), 0);
        q.add(new byte[] {10, 20, 30}, new byte[] {11, 20, 28});
        OutputDrift d = q.result();
        assertThat(d.atol).isEqualTo(1);
        assertThat(d.maxAbsError).isEqualTo(2);
        assertThat(d.fractionOutside).isCloseTo(1 / 3.0, within(1e-9));
    }

    @Test
    void uint8ValuesAreComparedUnsignedSo255Against0IsOutsideTolerance() {
        DriftAccumulator u = new DriftAccumulator("u", ElementType.UINT8, DriftTolerance.defaults(), 0);
        u.add(new byte[] {(byte) 255, (byte) 200, 7}, new byte[] {0, (byte) 201, 7});
        OutputDrift d = u.result();
        assertThat(d.maxAbsError).as("|255 - 0| on UINT8").isEqualTo(255);
        assertThat(d.maxRelError).isInfinite();
        assertThat(d.fractionOutside).isCloseTo(1 / 3.0, within(1e-9)); // 200 vs 201 is within atol 1
        assertThat(d.withinTolerance).isFalse();
    }

    @Test
    void int8ValuesKeepSignedSemantics() {
        DriftAccumulator s = new DriftAccumulator("s", ElementType.INT8, DriftTolerance.defaults(), 0);
        // (byte) 255 is -1 as INT8: -1 against 0 is a difference of 1, within INT8's atol of 1
        s.add(new byte[] {(byte) 255, -128}, new byte[] {0, 127});
        OutputDrift d = s.result();
        assertThat(d.maxAbsError).as("|-128 - 127| on INT8").isEqualTo(255);
        assertThat(d.fractionOutside).isEqualTo(0.5);
        assertThat(d.withinTolerance).isFalse();
    }

    @Test
    void zeroReferenceGivesInfiniteRelativeErrorAndNaNMustMatchNaN() {
        DriftAccumulator acc = new DriftAccumulator("y", ElementType.DOUBLE, DriftTolerance.defaults(), 0);
        acc.add(new double[] {1e-6, Double.NaN, Double.NaN}, new double[] {0, Double.NaN, 1});
        OutputDrift d = acc.result();
        assertThat(d.maxRelError).isInfinite();
        assertThat(d.fractionOutside).isCloseTo(1 / 3.0, within(1e-9)); // 1e-6 <= atol; NaN==NaN ok; NaN vs 1 not
    }

    @Test
    void topOneAgreementForClassifierShapedOutputs() {
        DriftAccumulator acc = new DriftAccumulator("p", ElementType.FLOAT, DriftTolerance.defaults(), 3);
        acc.add(new float[] {0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f}, new float[] {0.1f, 0.6f, 0.3f, 0.2f, 0.5f, 0.3f});
        assertThat(acc.result().top1Agreement).isEqualTo(0.5);
    }

    @Test
    void aReferenceOfAnotherTypeOrLengthIsAnError() {
        DriftAccumulator acc = new DriftAccumulator("y", ElementType.FLOAT, DriftTolerance.defaults(), 0);
        assertThatThrownBy(() -> acc.add(new float[2], new double[2]))
                .hasMessage("Output 'y' is float[] but its reference is double[]");
        assertThatThrownBy(() -> acc.add(new float[2], new float[3]))
                .hasMessage("Output 'y' has 2 values but its reference has 3");
    }
}
