package io.flinkonnx.flink.tensor;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;

/**
 * The attention mask of a model that has one, derived for a record whose encoder left it out: ones over the
 * record's own length, each free dim of the mask taking the length the record gave for the same symbol in
 * another input; padding adds the zeros. It owns the rule and a small cache of ones arrays by length, and is
 * given only what the rule needs (the inputs, which of them is the mask, the record size bound), so the tensor
 * layer stays below the engine that calls it.
 */
@Internal
public final class AttentionMasks {
    private static final int CACHE_ENTRIES = 16;
    private static final int CACHE_MAX_LENGTH = 1 << 16;

    private final List<TensorSpec> inputs;
    private final int maskInput;
    private final long maxRecordBytes;

    /** Ones arrays of the derived attention mask by length: a few recent lengths, small arrays only. */
    private final Map<Integer, Object> ones = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, Object> eldest) {
            return size() > CACHE_ENTRIES;
        }
    };

    /**
     * @param inputs the model's inputs, as records fill them
     * @param maskInput the index of the attention-mask input among {@code inputs}
     * @param maxRecordBytes the most input bytes a record may carry, the derived mask included
     */
    public AttentionMasks(List<TensorSpec> inputs, int maskInput, long maxRecordBytes) {
        if (maskInput < 0 || maskInput >= inputs.size()) {
            throw new IllegalArgumentException("No input " + maskInput + " among " + inputs.size() + " inputs");
        }
        this.inputs = inputs;
        this.maskInput = maskInput;
        this.maxRecordBytes = maxRecordBytes;
    }

    /** Derives the mask into {@code row} unless the record gave it. */
    public void deriveIfMissing(RecordInputs row) {
        if (!row.has(maskInput)) {
            derive(row);
        }
    }

    /**
     * Fills the attention mask with ones over the record's own length.
     *
     * @throws RecordConversionException when no other input gives one of the mask's free dims, or the mask
     *     would take the record past {@code maxRecordBytes}
     */
    private void derive(RecordInputs row) {
        TensorSpec mask = inputs.get(maskInput);
        List<Dim> dims = mask.recordDims();
        long[] shape = new long[dims.size()];
        for (int d = 0; d < dims.size(); d++) {
            shape[d] = dims.get(d).isFixed() ? dims.get(d).value() : lengthOf(row, dims.get(d));
            if (shape[d] < 0) {
                throw new RecordConversionException("Cannot derive input '" + mask.name() + "' of shape "
                        + mask.shapeString() + ": no other input gives dim '" + dims.get(d)
                        + "'; put the mask in the encoder");
            }
        }
        long values = 1;
        for (long d : shape) {
            values = d == 0 || values <= maxRecordBytes / d ? values * d : maxRecordBytes + 1;
        }
        long bytes = values * Math.max(1, mask.elementType().byteSize());
        if (values > maxRecordBytes || row.byteEstimate() + bytes > maxRecordBytes) {
            throw new RecordConversionException("The attention mask '" + mask.name() + "' derived for this record ("
                    + Arrays.toString(shape) + ") would take the record past maxRecordBytes (" + maxRecordBytes
                    + ")");
        }
        int n = (int) values;
        Object filled = n > CACHE_MAX_LENGTH
                ? ones(mask.elementType(), n)
                : ones.computeIfAbsent(n, k -> ones(mask.elementType(), k));
        row.putDerived(maskInput, filled, shape);
    }

    /** The length {@code row} gave for symbolic dim {@code dim} in another input, or -1. */
    private long lengthOf(RecordInputs row, Dim dim) {
        if (!dim.isSymbolic()) {
            return -1;
        }
        for (int i = 0; i < inputs.size(); i++) {
            if (i == maskInput || !row.has(i)) {
                continue;
            }
            List<Dim> dims = inputs.get(i).recordDims();
            for (int d = 0; d < dims.size(); d++) {
                if (dim.equals(dims.get(d)) && row.shape(i).length > d) {
                    return row.shape(i)[d];
                }
            }
        }
        return -1;
    }

    /** The mask's ones: the mask input's element type (INT64, INT32, FLOAT, BOOL, ...) filled with 1. */
    private static Object ones(ElementType type, int n) {
        ElementCodec codec = ElementCodec.of(type);
        Object ones = codec.newArray(n);
        codec.fillOnes(ones);
        return ones;
    }

    /** Lengths whose ones arrays are cached. */
    @VisibleForTesting
    public int cacheSize() {
        return ones.size();
    }
}
