package io.flinkonnx.flink.tensor;

import java.lang.reflect.Array;
import java.util.Arrays;
import org.apache.flink.annotation.Internal;

/**
 * Row-major copies between a record's own shape and a larger (padded) shape of the same rank: padding
 * before a run, cutting back after it.
 */
@Internal
public final class Padding {
    private Padding() {}

    public static long product(long[] shape) {
        long p = 1;
        for (long d : shape) {
            p *= d;
        }
        return p;
    }

    /** {@code values} of {@code shape} placed in a new array of {@code target} shape, the rest filled with the pad. */
    public static Object pad(Object values, long[] shape, long[] target, ElementCodec codec, double padValue) {
        Object out = codec.newArray(Math.toIntExact(product(target)));
        codec.fill(out, padValue);
        copyBlock(values, shape, out, target, shape);
        return out;
    }

    /** The leading {@code shape} block of {@code values} laid out in {@code from} shape, as a new dense array. */
    public static Object cut(Object values, long[] from, long[] shape) {
        Object out = Array.newInstance(values.getClass().getComponentType(), Math.toIntExact(product(shape)));
        copyBlock(values, from, out, shape, shape);
        return out;
    }

    /** Copies the {@code block} (a leading corner) of {@code src} (laid out as srcShape) into {@code dst} (dstShape). */
    private static void copyBlock(Object src, long[] srcShape, Object dst, long[] dstShape, long[] block) {
        int rank = block.length;
        if (rank == 0) {
            System.arraycopy(src, 0, dst, 0, 1);
            return;
        }
        int rowLength = (int) block[rank - 1];
        long rows = product(Arrays.copyOf(block, rank - 1));
        long[] index = new long[rank - 1];
        for (long r = 0; r < rows; r++) {
            long srcOffset = 0;
            long dstOffset = 0;
            for (int d = 0; d < rank - 1; d++) {
                srcOffset = srcOffset * srcShape[d] + index[d];
                dstOffset = dstOffset * dstShape[d] + index[d];
            }
            srcOffset *= srcShape[rank - 1];
            dstOffset *= dstShape[rank - 1];
            System.arraycopy(src, (int) srcOffset, dst, (int) dstOffset, rowLength);
            for (int d = rank - 2; d >= 0; d--) {
                if (++index[d] < block[d]) {
                    break;
                }
                index[d] = 0;
            }
        }
    }
}
