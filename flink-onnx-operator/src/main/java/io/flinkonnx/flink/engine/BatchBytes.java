package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.TensorSpec;
import java.util.List;
import java.util.stream.IntStream;
import org.apache.flink.annotation.Internal;

/**
 * What {@code BatchPolicy.maxBufferedBytes} bounds, for every operator that buffers encoded records: the
 * buffer's input bytes as packed, every buffered record padded to each input's widest dims among the buffered
 * records (an upper bound: records that may not be padded together run in separate groups). Strings count
 * their estimate ({@link RecordInputs#inputBytes}), at least the largest buffered one. Inputs the operator
 * supplies (recurrent states, constants) are not buffered and do not count. One per buffer; not thread-safe.
 *
 * <pre>{@code
 * if (size > 0 && bytes.with(row, size) > policy.maxBufferedBytes()) {
 *     flush(); // the buffer first: the record joins the next batch
 * }
 * buffered = bytes.with(row, size);
 * bytes.add(row, size);
 * size++;
 * }</pre>
 */
@Internal
public final class BatchBytes {
    /** The inputs records give. */
    private final int[] counted;
    /** Every record's input bytes when all counted inputs have fixed record dims (no strings), else -1. */
    private final long fixedRecordBytes;
    /** Per input, the widest dims of the buffered records. */
    private final long[][] widest;

    private final long[] widestStringBytes;

    /** For the buffer of {@code runner}'s records. */
    public BatchBytes(InferenceRunner<?, ?> runner) {
        List<TensorSpec> inputs = runner.signature().inputs();
        this.counted = IntStream.range(0, inputs.size())
                .filter(i -> !runner.supplies(i))
                .toArray();
        this.fixedRecordBytes = fixedRecordBytes(inputs, counted);
        this.widest = new long[inputs.size()][];
        this.widestStringBytes = new long[inputs.size()];
    }

    /**
     * The buffer's bytes as packed if {@code row} joins the {@code size} records buffered (0: it starts a new
     * buffer), each padded to the widest dims of all of them.
     */
    public long with(RecordInputs row, int size) {
        if (fixedRecordBytes >= 0) { // every record the same size: no per-record walk over the dims
            return saturatedMultiply(fixedRecordBytes, size + 1);
        }
        long bytes = 0;
        for (int i : counted) {
            long[] shape = row.shape(i);
            long elements = 1;
            for (int d = 0; d < shape.length; d++) {
                long dim = size > 0 && d < widest[i].length ? Math.max(widest[i][d], shape[d]) : shape[d];
                elements = saturatedMultiply(elements, dim);
            }
            long perRecord = row.isStringInput(i)
                    ? (size > 0 ? Math.max(row.inputBytes(i), widestStringBytes[i]) : row.inputBytes(i))
                    : saturatedMultiply(elements, row.elementBytes(i));
            bytes = saturatedAdd(bytes, saturatedMultiply(perRecord, size + 1));
        }
        return bytes;
    }

    /** {@code row} joins the buffer as its record {@code size} (0 starts the buffer over). */
    public void add(RecordInputs row, int size) {
        if (fixedRecordBytes >= 0) {
            return;
        }
        for (int i : counted) {
            long[] shape = row.shape(i);
            if (size == 0 || widest[i].length != shape.length) {
                widest[i] = shape.clone();
                widestStringBytes[i] = 0;
            } else {
                for (int d = 0; d < shape.length; d++) {
                    widest[i][d] = Math.max(widest[i][d], shape[d]);
                }
            }
            if (row.isStringInput(i)) {
                widestStringBytes[i] = Math.max(widestStringBytes[i], row.inputBytes(i));
            }
        }
    }

    /** Bytes of every record when all counted inputs have fixed record dims and none holds strings; else -1. */
    private static long fixedRecordBytes(List<TensorSpec> inputs, int[] counted) {
        long bytes = 0;
        for (int i : counted) {
            TensorSpec input = inputs.get(i);
            if (input.elementType().byteSize() <= 0 || !input.isShapeKnown()) {
                return -1; // strings, or a shape the model does not declare
            }
            long elements = input.elementType().byteSize();
            for (Dim d : input.recordDims()) {
                if (!d.isFixed()) {
                    return -1;
                }
                elements = saturatedMultiply(elements, d.value());
            }
            bytes = saturatedAdd(bytes, elements);
        }
        return bytes;
    }

    static long saturatedMultiply(long a, long b) {
        long high = Math.multiplyHigh(a, b);
        return high == 0 && a * b >= 0 ? a * b : Long.MAX_VALUE;
    }

    static long saturatedAdd(long a, long b) {
        long sum = a + b;
        return sum < 0 ? Long.MAX_VALUE : sum;
    }
}
