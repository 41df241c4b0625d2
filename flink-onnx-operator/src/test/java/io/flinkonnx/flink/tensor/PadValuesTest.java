package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.model.ElementType;
import org.junit.jupiter.api.Test;

/** A pad value means the same number in every element type: half floats get its bits, booleans pad false. */
class PadValuesTest {
    @Test
    void halfFloatPadsHoldTheValueNotItsIntegerBits() {
        short[] fp16 = new short[2];
        ElementCodec.of(ElementType.FLOAT16).fill(fp16, 1.0);
        assertThat(fp16[0]).isEqualTo((short) 0x3C00);
        short[] bf16 = new short[2];
        ElementCodec.of(ElementType.BFLOAT16).fill(bf16, -2.0);
        assertThat(bf16[0]).isEqualTo((short) 0xC000);
        for (float v : new float[] {0f, 1f, -1.5f, 0.1f, 65504f, 6.1e-5f, 3e-7f}) {
            assertThat(HalfFloats.fp16(HalfFloats.toFp16(v)))
                    .as("fp16 of %s", v)
                    .isCloseTo(v, org.assertj.core.api.Assertions.within(Math.abs(v) / 1000 + 1e-7f));
        }
        assertThat(HalfFloats.fp16(HalfFloats.toFp16(1e6f))).isInfinite();
    }

    @Test
    void booleansPadFalseWhateverThePadValueAndOnesAreTrue() {
        boolean[] padded = new boolean[3];
        ElementCodec codec = ElementCodec.of(ElementType.BOOL);
        codec.fill(padded, 1.0);
        assertThat(padded).containsOnly(false);
        codec.fillOnes(padded);
        assertThat(padded).containsOnly(true);
    }
}
