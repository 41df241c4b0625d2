package io.flinkonnx.flink.tensor;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.TensorSpec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.annotation.Internal;

/**
 * Packs records' inputs into one tensor per input, stacking them along the batch axis, in reused
 * native-order direct buffers (ORT then reads them without a copy). A tensor made here is backed by its
 * buffer: close it before the next {@link #pack}.
 *
 * <p>Rows detached into a {@link RowStaging} ({@link RecordInputs#batchRows}) are packed there already:
 * when a run's rows lie in it end to end, all of one shape (the common case: a batch of fixed-width
 * records, batch axis 0), the input's tensor is made of that slice of the staging, with no copy at all.
 * Otherwise (padding, records grouped out of order, a batch axis other than 0) each row is copied here,
 * a staged one with a bulk copy of its bytes.
 */
@Internal
public final class TensorPacker {
    private final OrtEnvironment env;
    private final List<TensorSpec> specs;
    private final ByteBuffer[] buffers;
    /** Per input: packs in a row that needed less than a quarter of the buffer. */
    private final int[] smallPacks;

    private final double padValue;
    private final int maskInput;
    private final Map<String, long[]> padded = new HashMap<>();
    /**
     * Run sizes whose pinned run passed: the pinned shapes fit the model at that size, so a failing pinned run
     * of that size is the inputs' fault.
     */
    private final BitSet pinnedSizesProven = new BitSet();

    public static final int SHRINK_WINDOW = 32;
    public static final long SHRINK_FLOOR_BYTES = 1 << 20;

    /**
     * @param padValue what ragged inputs are padded with
     * @param maskInput the attention-mask input, always padded with 0 (-1 when the model has none)
     */
    public TensorPacker(OrtEnvironment env, List<TensorSpec> specs, double padValue, int maskInput) {
        this.env = env;
        this.specs = specs;
        this.buffers = new ByteBuffer[specs.size()];
        this.smallPacks = new int[specs.size()];
        this.padValue = padValue;
        this.maskInput = maskInput;
    }

    /**
     * One tensor per input for records {@code rows[offset .. offset+count)}; the caller closes them (on
     * every path). Records that differ along a free (symbolic or unknown) dim are padded to the longest
     * with {@code padValue}; the lengths per symbol are then in {@link #paddedLengths()}.
     */
    public Map<String, OnnxTensor> pack(RecordInputs[] rows, int offset, int count) throws OrtException {
        padded.clear();
        shrinkIfIdle();
        Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
        try {
            for (int i = 0; i < specs.size(); i++) {
                tensors.put(specs.get(i).name(), packInput(i, rows, offset, count));
            }
            return tensors;
        } catch (OutOfMemoryError e) {
            // Heap or direct memory for padding/packing this batch: a failed run, not a dead TaskManager.
            tensors.values().forEach(OnnxTensor::close);
            Arrays.fill(buffers, null);
            throw new RecordConversionException(
                    "Packing " + count + " record(s) for model inputs ran out of memory (" + e.getMessage() + ")", e);
        } catch (OrtException | RuntimeException e) {
            tensors.values().forEach(OnnxTensor::close);
            throw e;
        }
    }

    /**
     * Packs {@code rows[offset, offset+count)}, runs them on {@code session} and loads the outputs into
     * {@code into}; tensors and the result are closed on every path.
     *
     * @param options ORT run options (a terminate flag), or null
     */
    public void run(
            OrtSession session,
            OrtSession.RunOptions options,
            RecordInputs[] rows,
            int offset,
            int count,
            BatchOutputs into)
            throws OrtException {
        Map<String, OnnxTensor> tensors = pack(rows, offset, count);
        try {
            Map<String, OnnxTensor> pinned = into.pinned(env, count);
            if (pinned != null) {
                try {
                    runPinned(session, options, tensors, pinned).close(); // the result owns none of them
                    into.loadPinned(count, padded);
                    pinnedSizesProven.set(count);
                    return;
                } catch (OrtException | RuntimeException pinnedFailed) {
                    if (pinnedSizesProven.get(count)) {
                        throw pinnedFailed; // bad inputs: no second run (isolation would pay each failure twice)
                    }
                    // The inputs, or the pinned shapes (a model whose outputs differ from what it declares)? The
                    // run below tells: if it passes, outputs are never pinned again; if not, the inputs were bad.
                    runAllocating(session, options, tensors, count, into);
                    into.unpin();
                    return;
                }
            }
            runAllocating(session, options, tensors, count, into);
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
    }

    private static OrtSession.Result runPinned(
            OrtSession session,
            OrtSession.RunOptions options,
            Map<String, OnnxTensor> tensors,
            Map<String, OnnxTensor> pinned)
            throws OrtException {
        return options == null
                ? session.run(tensors, Set.of(), pinned)
                : session.run(tensors, Set.of(), pinned, options);
    }

    /** The run with outputs ORT allocates, copied out into {@code into}; the result is closed on every path. */
    private void runAllocating(
            OrtSession session,
            OrtSession.RunOptions options,
            Map<String, OnnxTensor> tensors,
            int count,
            BatchOutputs into)
            throws OrtException {
        try (OrtSession.Result result = options == null ? session.run(tensors) : session.run(tensors, options)) {
            into.load(result, count, padded);
        }
    }

    /** Direct bytes held between batches. */
    public long retainedBytes() {
        long bytes = 0;
        for (ByteBuffer b : buffers) {
            bytes += b == null ? 0 : b.capacity();
        }
        return bytes;
    }

    /**
     * Drops a buffer that the last {@link #SHRINK_WINDOW} packs all needed less than a quarter of: one
     * outlier record must not keep its batch's memory for the operator's life.
     */
    private void shrinkIfIdle() {
        for (int i = 0; i < buffers.length; i++) {
            if (buffers[i] != null && smallPacks[i] >= SHRINK_WINDOW && buffers[i].capacity() > SHRINK_FLOOR_BYTES) {
                buffers[i] = null;
                smallPacks[i] = 0;
            }
        }
    }

    /** For the last {@link #pack}: symbol of each padded axis -> the records' own lengths along it. */
    public Map<String, long[]> paddedLengths() {
        return padded;
    }

    /** The per-record shape all records of the batch take: each dim's maximum, checked for raggedness. */
    private long[] commonShape(int input, RecordInputs[] rows, int offset, int count) {
        TensorSpec spec = specs.get(input);
        long[] first = rows[offset].shape(input);
        long[] common = first.clone();
        boolean ragged = false;
        for (int r = offset + 1; r < offset + count; r++) {
            long[] s = rows[r].shape(input);
            if (s.length != first.length) {
                throw new RecordConversionException("Records of one batch disagree on the rank of input '" + spec.name()
                        + "': " + Arrays.toString(first) + " and " + Arrays.toString(s));
            }
            for (int d = 0; d < s.length; d++) {
                if (s[d] != common[d]) {
                    ragged = true;
                    common[d] = Math.max(common[d], s[d]);
                }
            }
        }
        if (ragged) {
            List<Dim> dims = spec.recordDims();
            for (int d = 0; d < common.length; d++) {
                if (d < dims.size() && dims.get(d).isFixed() && !allEqual(rows, offset, count, input, d)) {
                    throw new RecordConversionException(
                            "Records of one batch disagree on fixed dim " + d + " of input '" + spec.name() + "'");
                }
                if (d < dims.size() && dims.get(d).isSymbolic() && !allEqual(rows, offset, count, input, d)) {
                    long[] lengths = new long[count];
                    for (int r = 0; r < count; r++) {
                        lengths[r] = rows[offset + r].shape(input)[d];
                    }
                    padded.put(dims.get(d).symbol(), lengths);
                }
            }
        }
        return common;
    }

    private static boolean allEqual(RecordInputs[] rows, int offset, int count, int input, int d) {
        long v = rows[offset].shape(input)[d];
        for (int r = offset + 1; r < offset + count; r++) {
            if (rows[r].shape(input)[d] != v) {
                return false;
            }
        }
        return true;
    }

    /**
     * The run's values for {@code input} as one slice of the rows' staging, when every row of the run is
     * staged in the same {@link RowStaging} right after the one before it, with shape {@code recordShape}
     * and this packer's element type; null otherwise.
     */
    private static ByteBuffer stagedRun(
            int input, RecordInputs[] rows, int offset, int count, long[] recordShape, ElementCodec codec) {
        RecordInputs first = rows[offset];
        RowStaging staging = first.staging();
        if (staging == null || !first.isStaged(input) || first.elementType(input) != codec.type) {
            return null;
        }
        int start = first.stagedAt(input);
        long end = start;
        for (int r = offset; r < offset + count; r++) {
            RecordInputs row = rows[r];
            if (row.staging() != staging
                    || row.stagedAt(input) != end
                    || !Arrays.equals(row.shape(input), recordShape)) {
                return null;
            }
            end += row.stagedBytes(input);
        }
        return staging.segment(input, start, (int) (end - start));
    }

    /** Appends the row's values for {@code input} in {@code target} shape (padded) to {@code buf}. */
    private void put(ByteBuffer buf, RecordInputs row, int input, long[] target, ElementCodec codec) {
        if (row.isStaged(input) && row.elementType(input) == codec.type && Arrays.equals(row.shape(input), target)) {
            buf.put(row.stagedSegment(input).flip());
        } else {
            codec.put(buf, valuesIn(row, input, target));
        }
    }

    /** The record's values laid out in {@code target} shape, padded; the values themselves when no padding is needed. */
    private Object valuesIn(RecordInputs row, int input, long[] target) {
        long[] shape = row.shape(input);
        Object values = row.values(input);
        if (Arrays.equals(shape, target)) {
            return values;
        }
        return Padding.pad(
                values,
                shape,
                target,
                ElementCodec.of(specs.get(input).elementType()),
                input == maskInput ? 0 : padValue);
    }

    private OnnxTensor packInput(int input, RecordInputs[] rows, int offset, int count) throws OrtException {
        TensorSpec spec = specs.get(input);
        if (!spec.hasBatchAxis() && count > 1) {
            checkShared(input, rows, offset, count);
            count = 1; // one value for the whole run
        }
        long[] recordShape = commonShape(input, rows, offset, count);
        long[] shape = batchShape(spec, recordShape, count);
        long perRecordLong = Padding.product(recordShape);
        if (perRecordLong * count > Integer.MAX_VALUE) {
            throw new RecordConversionException("A batch of " + count + " record(s) for input '" + spec.name()
                    + "' would hold " + perRecordLong * count + " values, more than one tensor buffer holds");
        }
        int perRecord = (int) perRecordLong;
        ElementCodec codec = ElementCodec.of(spec.elementType());
        int axis = spec.hasBatchAxis() ? spec.batchAxis() : 0;
        if (!codec.buffered() || (axis > 0 && count > 1)) {
            Object flat = stack(input, rows, offset, count, recordShape, axis, codec, perRecord);
            if (!codec.buffered()) {
                return OnnxTensor.createTensor(env, (String[]) flat, shape);
            }
            ByteBuffer buf = buffer(input, (long) perRecord * count * codec.byteSize());
            codec.put(buf, flat);
            return codec.tensor(env, buf, shape);
        }
        ByteBuffer staged = stagedRun(input, rows, offset, count, recordShape, codec);
        if (staged != null) {
            return codec.tensor(env, staged, shape);
        }
        ByteBuffer buf = buffer(input, (long) perRecord * count * codec.byteSize());
        for (int r = 0; r < count; r++) {
            put(buf, rows[offset + r], input, recordShape, codec);
        }
        return codec.tensor(env, buf, shape);
    }

    /**
     * The records' values stacked along batch axis {@code axis}, flat: for every index of the dims before
     * the axis, each record's block of the dims after it in turn (axis 0: the records one after another).
     */
    private Object stack(
            int input,
            RecordInputs[] rows,
            int offset,
            int count,
            long[] recordShape,
            int axis,
            ElementCodec codec,
            int perRecord) {
        int outer = (int) Padding.product(Arrays.copyOfRange(recordShape, 0, Math.min(axis, recordShape.length)));
        int inner = outer == 0 ? 0 : perRecord / outer;
        Object flat = codec.newArray(perRecord * count);
        for (int r = 0; r < count; r++) {
            Object values = valuesIn(rows[offset + r], input, recordShape);
            for (int o = 0; o < outer; o++) {
                System.arraycopy(values, o * inner, flat, (o * count + r) * inner, inner);
            }
        }
        return flat;
    }

    /**
     * An input without a batch axis feeds a run of several records only with one value for all of them:
     * the very array the operator shares across rows (a constant input), never records' own values.
     */
    private void checkShared(int input, RecordInputs[] rows, int offset, int count) {
        Object first = rows[offset].values(input);
        for (int r = offset + 1; r < offset + count; r++) {
            if (rows[r].values(input) != first || !Arrays.equals(rows[r].shape(input), rows[offset].shape(input))) {
                throw new RecordConversionException("Input '" + specs.get(input).name() + "' has no batch axis: a run"
                        + " of " + count + " records needs one value shared by all of them (a constant input)");
            }
        }
    }

    /** The record shape with the batch dimension ({@code count}) inserted at the batch axis. */
    private static long[] batchShape(TensorSpec spec, long[] recordShape, int count) {
        if (!spec.hasBatchAxis()) {
            if (count != 1) {
                throw new IllegalStateException("Input '" + spec.name() + "' has no batch axis; it takes one record"
                        + " per run, not " + count);
            }
            return recordShape;
        }
        int axis = spec.batchAxis();
        if (axis > recordShape.length) {
            throw new RecordConversionException("Input '" + spec.name() + "' has batch axis " + axis
                    + " but the record's shape " + Arrays.toString(recordShape) + " has only " + recordShape.length
                    + " dims");
        }
        long[] shape = new long[recordShape.length + 1];
        System.arraycopy(recordShape, 0, shape, 0, axis);
        shape[axis] = count;
        System.arraycopy(recordShape, axis, shape, axis + 1, recordShape.length - axis);
        return shape;
    }

    /** A cleared native-order direct buffer of at least {@code bytes}, grown by doubling. */
    private ByteBuffer buffer(int input, long bytes) {
        if (bytes > Integer.MAX_VALUE) {
            throw new RecordConversionException("Batch for input '"
                    + specs.get(input).name() + "' needs " + bytes + " bytes, more than one buffer holds");
        }
        ByteBuffer b = buffers[input];
        smallPacks[input] = b != null && 4 * bytes < b.capacity() ? smallPacks[input] + 1 : 0;
        if (b == null || b.capacity() < bytes) {
            buffers[input] = null; // the old one is garbage before the new one is allocated
            int capacity = (int) Math.min(Integer.MAX_VALUE, Math.max(bytes, b == null ? 64 : 2L * b.capacity()));
            b = ByteBuffer.allocateDirect(capacity).order(ByteOrder.nativeOrder());
            buffers[input] = b;
        }
        b.clear();
        return b;
    }
}
