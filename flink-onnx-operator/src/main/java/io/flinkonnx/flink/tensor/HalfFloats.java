package io.flinkonnx.flink.tensor;

import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorData;
import org.apache.flink.annotation.Internal;

/**
 * FLOAT16 and BFLOAT16 values travel as their raw 16-bit patterns ({@code short[]}); ORT widens such
 * outputs to float, so references are widened the same way before comparing.
 */
@Internal
public final class HalfFloats {
    private HalfFloats() {}

    public static boolean isHalf(ElementType type) {
        return type == ElementType.FLOAT16 || type == ElementType.BFLOAT16;
    }

    /** The values of {@code t}, widened to {@code float[]} when they are half floats. */
    public static Object widen(TensorData t) {
        if (!isHalf(t.type())) {
            return t.values();
        }
        short[] bits = (short[]) t.values();
        float[] out = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            out[i] = t.type() == ElementType.BFLOAT16 ? Float.intBitsToFloat((bits[i] & 0xFFFF) << 16) : fp16(bits[i]);
        }
        return out;
    }

    /** IEEE 754 binary16 to float. */
    public static float fp16(short h) {
        int bits = h & 0xFFFF;
        int sign = (bits >>> 15) << 31;
        int exponent = (bits >>> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        if (exponent == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
        }
        if (exponent == 0) {
            if (mantissa == 0) {
                return Float.intBitsToFloat(sign);
            }
            float value = mantissa / 1024f / 16384f; // 2^-14 * m/1024
            return sign != 0 ? -value : value;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    /** float to IEEE 754 binary16 bits, rounding to nearest even (overflow to infinity, NaN kept). */
    public static short toFp16(float f) {
        int bits = Float.floatToIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int exponent = ((bits >>> 23) & 0xFF) - 127 + 15;
        int mantissa = bits & 0x7FFFFF;
        if (((bits >>> 23) & 0xFF) == 0xFF) {
            return (short) (sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0));
        }
        if (exponent >= 0x1F) {
            return (short) (sign | 0x7C00);
        }
        if (exponent <= 0) {
            if (exponent < -10) {
                return (short) sign;
            }
            mantissa |= 0x800000;
            int shift = 14 - exponent;
            int half = mantissa >> shift;
            int rest = mantissa & ((1 << shift) - 1);
            int halfway = 1 << (shift - 1);
            if (rest > halfway || (rest == halfway && (half & 1) == 1)) {
                half++;
            }
            return (short) (sign | half);
        }
        int half = (exponent << 10) | (mantissa >> 13);
        int rest = mantissa & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
            half++;
        }
        return (short) (sign | half);
    }

    /** float to bfloat16 bits, rounding to nearest even (NaN kept). */
    public static short toBf16(float f) {
        int bits = Float.floatToIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
