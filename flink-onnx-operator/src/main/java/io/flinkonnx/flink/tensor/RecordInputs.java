package io.flinkonnx.flink.tensor;

import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.annotation.Internal;

/**
 * One record's encoded inputs, checked against the model's inputs as they are put: type, per-record
 * shape, nothing missing. Reused across records ({@link #reset}).
 *
 * <p>Rows made by {@link #batchRows} share a {@link RowStaging}: {@link #detach} then writes the values
 * the encoder gave straight into it, packed as ORT reads them and each record right after the previous
 * one, so that a batch of records of one shape is packed already and goes to ORT without a second copy.
 */
@Internal
public final class RecordInputs implements InputRow {
    private final String model;
    private final List<TensorSpec> specs;
    private final Object[] values;
    private final long[][] shapes;
    /** Whether value i was derived by the operator (a shared, never-mutated array) rather than given. */
    private final boolean[] derived;
    /** Where the rows of this one's batch keep their values once detached; null: heap copies. */
    private final RowStaging staging;
    /** Per input: where its values start in {@link #staging} once detached there, -1 when they are not. */
    private final int[] stagedAt;
    /** Per input: how many values it has in {@link #staging}. */
    private final int[] stagedCount;
    /** Per STRING input: its bytes as ORT holds them (UTF-8, plus {@link #STRING_OVERHEAD_BYTES} each). */
    private final long[] stringBytes;

    /** What each string costs beyond its UTF-8 bytes in the estimate of a record's size. */
    static final int STRING_OVERHEAD_BYTES = 8;

    /** A row of its own: {@link #detach} copies into heap arrays. */
    public RecordInputs(String model, List<TensorSpec> specs) {
        this(model, specs, null);
    }

    private RecordInputs(String model, List<TensorSpec> specs, RowStaging staging) {
        this.model = model;
        this.specs = specs;
        this.values = new Object[specs.size()];
        this.shapes = new long[specs.size()][];
        this.derived = new boolean[specs.size()];
        this.staging = staging;
        this.stagedAt = new int[specs.size()];
        this.stagedCount = new int[specs.size()];
        this.stringBytes = new long[specs.size()];
        Arrays.fill(stagedAt, -1);
    }

    /** {@code count} rows of one batch, sharing one {@link RowStaging}. */
    public static RecordInputs[] batchRows(String model, List<TensorSpec> specs, int count) {
        RowStaging staging = new RowStaging(specs.size());
        RecordInputs[] rows = new RecordInputs[count];
        for (int i = 0; i < count; i++) {
            rows[i] = new RecordInputs(model, specs, staging);
        }
        return rows;
    }

    public void reset() {
        Arrays.fill(values, null);
        Arrays.fill(shapes, null);
        Arrays.fill(derived, false);
        Arrays.fill(stagedAt, -1);
    }

    /** {@link #detach(int)} of a row that is not part of a staged batch. */
    public void detach() {
        detach(-1);
    }

    /**
     * Copies every array the encoder gave, so that a buffered record no longer shares memory with its
     * source: with object reuse, or an encoder that fills one scratch array per call, the next record
     * would otherwise overwrite this one's values before the batch runs. Rows of a batch
     * ({@link #batchRows}) copy into their {@link RowStaging}, packed; string values (and values that do not
     * fit there) into heap arrays.
     *
     * @param index the row's index in its batch: 0 starts the staging over (every earlier row of the batch
     *     has been scored); a later index appends (the rows before it are still buffered)
     */
    public void detach(int index) {
        if (staging != null && index == 0) {
            staging.startBatch();
        }
        for (int i = 0; i < values.length; i++) {
            if (values[i] == null || derived[i]) {
                continue;
            }
            ElementCodec codec = ElementCodec.of(specs.get(i).elementType());
            if (staging != null && index >= 0 && codec.buffered()) { // detach(): heap copies, never the staging
                int count = Array.getLength(values[i]);
                int at = staging.append(i, codec, values[i], count);
                if (at >= 0) {
                    stagedAt[i] = at;
                    stagedCount[i] = count;
                    values[i] = null;
                    continue;
                }
            }
            values[i] = copyOf(values[i]);
        }
    }

    /** Whether input {@code input}'s values are in the batch's {@link RowStaging} (after {@link #detach}). */
    public boolean isStaged(int input) {
        return stagedAt[input] >= 0;
    }

    /** The staging this row's batch shares, or null. */
    public RowStaging staging() {
        return staging;
    }

    /** Where input {@code input}'s values start in {@link #staging()} (bytes), -1 when they are not there. */
    public int stagedAt(int input) {
        return stagedAt[input];
    }

    /** The bytes input {@code input} takes as packed. */
    public int stagedBytes(int input) {
        return stagedCount[input] * elementBytes(input);
    }

    /** Input {@code input}'s staged values as a buffer positioned at their end, backed by the staging. */
    ByteBuffer stagedSegment(int input) {
        return staging.segment(input, stagedAt[input], stagedBytes(input));
    }

    /**
     * A row of its own holding heap copies of every value of this one (given, derived and supplied alike)
     * with their shapes, sharing nothing with it or its staging: it stays as it is while this row is reused.
     */
    public RecordInputs copy() {
        RecordInputs copy = new RecordInputs(model, specs);
        for (int i = 0; i < values.length; i++) {
            if (!has(i)) {
                continue;
            }
            // values(i) of a staged input is read back into a new array already
            copy.values[i] = stagedAt[i] >= 0 ? values(i) : copyOf(values[i]);
            copy.shapes[i] = shapes[i].clone();
            copy.stringBytes[i] = stringBytes[i];
            copy.derived[i] = true; // never to be detached or refilled
        }
        return copy;
    }

    private static Object copyOf(Object array) {
        int length = Array.getLength(array);
        Object copy = Array.newInstance(array.getClass().getComponentType(), length);
        System.arraycopy(array, 0, copy, 0, length);
        return copy;
    }

    /**
     * Input {@code input}'s values as an array: the one given (or, after {@link #detach}, its copy); for
     * values staged in native memory a new array read back from there.
     */
    public Object values(int input) {
        if (stagedAt[input] >= 0) {
            return ElementCodec.of(specs.get(input).elementType())
                    .read(stagedSegment(input).flip(), stagedCount[input]);
        }
        return values[input];
    }

    public long[] shape(int input) {
        return shapes[input];
    }

    public int elementCount(int input) {
        return stagedAt[input] >= 0 ? stagedCount[input] : Array.getLength(values[input]);
    }

    @Override
    public InputRow put(String name, Object array) {
        int i = indexOf(name);
        Object values = oneString(specs.get(i), array);
        return set(i, values, inferShape(specs.get(i), values));
    }

    @Override
    public InputRow put(String name, Object array, long... recordShape) {
        int i = indexOf(name);
        Object values = oneString(specs.get(i), array);
        return set(i, values, checkShape(specs.get(i), values, recordShape));
    }

    /** A single {@code String} for a STRING input is its one value; anything else is as given. */
    private static Object oneString(TensorSpec spec, Object value) {
        return value instanceof String && spec.elementType() == ElementType.STRING
                ? new String[] {(String) value}
                : value;
    }

    @Override
    public InputRow put(Object array) {
        if (specs.size() != 1) {
            throw new RecordConversionException("put(values) needs a model with one input, but " + model + " has "
                    + specs.size() + ": " + describe(specs) + ". Name the input: put(\"name\", values).");
        }
        return put(specs.get(0).name(), array);
    }

    /** Whether input {@code input} was given. */
    public boolean has(int input) {
        return values[input] != null || stagedAt[input] >= 0;
    }

    /** Puts a value the operator derived itself (an attention mask), shape already known to fit. */
    public void putDerived(int input, Object array, long[] shape) {
        stagedAt[input] = -1;
        values[input] = array;
        shapes[input] = shape;
        derived[input] = true;
    }

    /**
     * Puts a value the operator supplies (a recurrent state, a constant), checked like a record's value
     * (type, shape against the declared record dims, no empty dim) and never copied by {@link #detach}.
     *
     * @throws RecordConversionException naming what does not fit
     */
    public void putSupplied(int input, Object array, long[] shape) {
        long[] checked = checkShape(specs.get(input), array, shape);
        stagedAt[input] = -1;
        values[input] = array;
        shapes[input] = checked;
        derived[input] = true;
    }

    /** An estimate of this record's input bytes (strings: UTF-8 bytes, plus 8 per string). */
    public long byteEstimate() {
        long bytes = 0;
        for (int i = 0; i < specs.size(); i++) {
            bytes += inputBytes(i);
        }
        return bytes;
    }

    public boolean isStringInput(int i) {
        return values[i] instanceof String[];
    }

    /** The element type of input {@code i}. */
    public ElementType elementType(int i) {
        return specs.get(i).elementType();
    }

    /** Bytes per element of input {@code i} as packed (1 for BOOL). */
    public int elementBytes(int i) {
        return Math.max(1, specs.get(i).elementType().byteSize());
    }

    /** An estimate of the bytes of input {@code i} (0 when not given). */
    public long inputBytes(int i) {
        if (stagedAt[i] >= 0) {
            return stagedBytes(i);
        }
        if (values[i] instanceof String[]) {
            return stringBytes[i];
        }
        return values[i] == null
                ? 0
                : (long) Array.getLength(values[i])
                        * Math.max(1, specs.get(i).elementType().byteSize());
    }

    /** The first FLOAT/DOUBLE input holding a NaN, or null. */
    public String inputWithNaN() {
        for (int i = 0; i < specs.size(); i++) {
            Object value = values(i);
            if (value instanceof float[]) {
                for (float v : (float[]) value) {
                    if (Float.isNaN(v)) {
                        return specs.get(i).name();
                    }
                }
            } else if (value instanceof double[]) {
                for (double v : (double[]) value) {
                    if (Double.isNaN(v)) {
                        return specs.get(i).name();
                    }
                }
            }
        }
        return null;
    }

    /** Fails naming the first input the encoder did not give. */
    public void checkComplete() {
        checkComplete(null);
    }

    /**
     * Fails naming the first input the encoder did not give, among those not {@code supplied} by the
     * operator (null: all); fails too when the encoder gave one the operator supplies.
     */
    public void checkComplete(boolean[] supplied) {
        for (int i = 0; i < specs.size(); i++) {
            if (supplied != null && supplied[i]) {
                if (has(i)) {
                    throw new RecordConversionException(
                            "Input '" + specs.get(i).name() + "' of " + model
                                    + " is supplied by the operator (recurrent state or constant); the encoder must not give it");
                }
                continue;
            }
            if (!has(i)) {
                throw new RecordConversionException("The record gave no value for input '"
                        + specs.get(i).name() + "' of " + model + " (inputs: " + describe(specs) + ")");
            }
        }
    }

    private InputRow set(int i, Object array, long[] shape) {
        if (has(i)) {
            throw new RecordConversionException("Input '" + specs.get(i).name() + "' was given twice for one record");
        }
        values[i] = array;
        shapes[i] = shape;
        return this;
    }

    private int indexOf(String name) {
        for (int i = 0; i < specs.size(); i++) {
            if (specs.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new RecordConversionException(
                "Model " + model + " has no input '" + name + "'; its inputs are " + describe(specs));
    }

    private void checkType(TensorSpec spec, Object array) {
        if (array == null) {
            throw new RecordConversionException("Input '" + spec.name() + "' is null; it expects " + expected(spec));
        }
        Class<?> wanted = spec.elementType().javaArrayType();
        if (wanted == null) {
            throw new RecordConversionException("Input '" + spec.name() + "' has element type " + spec.elementType()
                    + ", which records cannot feed yet");
        }
        if (array.getClass() != wanted) {
            throw new RecordConversionException("Input '" + spec.name() + "' expects " + expected(spec)
                    + " but the record gave " + array.getClass().getSimpleName()
                    + (array.getClass().isArray() ? "" : " (not an array)") + "; values are never cast");
        }
        if (array instanceof String[]) {
            stringBytes[specs.indexOf(spec)] = checkStrings(spec, (String[]) array);
        }
    }

    /**
     * The strings' size as ORT holds them (UTF-8 bytes plus {@link #STRING_OVERHEAD_BYTES} each), checking each
     * on the way: no null, no unpaired surrogate (a {@code char} sequence no UTF-8 text has, which ORT would
     * hand native operators as invalid UTF-8). One pass over the characters, no allocation.
     */
    static long checkStrings(TensorSpec spec, String[] strings) {
        long bytes = 0;
        for (int k = 0; k < strings.length; k++) {
            String v = strings[k];
            if (v == null) {
                throw new RecordConversionException("Input '" + spec.name() + "' holds a null string at index " + k
                        + "; STRING inputs take text (an empty string is text)");
            }
            bytes += STRING_OVERHEAD_BYTES;
            int n = v.length();
            for (int c = 0; c < n; c++) {
                char ch = v.charAt(c);
                if (ch < 0x80) {
                    bytes++;
                } else if (ch < 0x800) {
                    bytes += 2;
                } else if (!Character.isSurrogate(ch)) {
                    bytes += 3;
                } else if (Character.isHighSurrogate(ch) && c + 1 < n && Character.isLowSurrogate(v.charAt(c + 1))) {
                    bytes += 4;
                    c++;
                } else {
                    throw new RecordConversionException("Input '" + spec.name() + "' holds an unpaired UTF-16"
                            + " surrogate (\\u" + Integer.toHexString(ch).toUpperCase(java.util.Locale.ROOT)
                            + ") at char " + c + " of string " + k + ": it is not text and has no UTF-8 form");
                }
            }
        }
        return bytes;
    }

    /**
     * The record shape from the array's length: fixed dims as declared, at most one free dim inferred. A
     * free dim is never 0; a dim the model itself declares as 0 is kept (the model expects an empty tensor).
     */
    private long[] inferShape(TensorSpec spec, Object array) {
        checkType(spec, array);
        int length = Array.getLength(array);
        if (!spec.isShapeKnown()) {
            if (length == 0) {
                throw emptyInput(spec, "it has no values");
            }
            return new long[] {length};
        }
        List<Dim> dims = spec.recordDims();
        long[] shape = new long[dims.size()];
        long fixedProduct = 1;
        int free = -1;
        for (int d = 0; d < dims.size(); d++) {
            if (dims.get(d).isFixed()) {
                shape[d] = dims.get(d).value();
                fixedProduct *= shape[d];
            } else if (free >= 0) {
                throw new RecordConversionException("Input '" + spec.name() + "' has record shape "
                        + shapeOf(dims) + " with more than one free dimension: give the shape explicitly,"
                        + " put(\"" + spec.name() + "\", values, dims...)");
            } else {
                free = d;
            }
        }
        if (free < 0) {
            if (length != fixedProduct) {
                throw new RecordConversionException("Input '" + spec.name() + "' expects " + fixedProduct
                        + " values per record (record shape " + shapeOf(dims) + ", model shape "
                        + spec.shapeString() + ") but the record has " + length);
            }
            return shape;
        }
        if (fixedProduct == 0) {
            throw new RecordConversionException("Input '" + spec.name() + "' has record shape " + shapeOf(dims)
                    + ": a fixed dimension of 0 leaves the free one undetermined; give the shape explicitly, put(\""
                    + spec.name() + "\", values, dims...)");
        }
        if (length == 0) {
            throw emptyInput(spec, "it has no values");
        }
        if (length % fixedProduct != 0) {
            throw new RecordConversionException("Input '" + spec.name() + "' expects a multiple of "
                    + fixedProduct + " values per record (record shape " + shapeOf(dims)
                    + ") but the record has " + length);
        }
        shape[free] = length / fixedProduct;
        return shape;
    }

    private long[] checkShape(TensorSpec spec, Object array, long[] shape) {
        checkType(spec, array);
        int length = Array.getLength(array);
        long product = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new RecordConversionException(
                        "Input '" + spec.name() + "': negative dimension in shape " + Arrays.toString(shape));
            }
            try {
                product = Math.multiplyExact(product, d);
            } catch (ArithmeticException e) {
                throw new RecordConversionException("Input '" + spec.name() + "': shape " + Arrays.toString(shape)
                        + " holds more values than a long counts");
            }
        }
        if (product != length) {
            throw new RecordConversionException("Input '" + spec.name() + "': shape " + Arrays.toString(shape)
                    + " holds " + product + " values but the record has " + length);
        }
        List<Dim> dims = spec.isShapeKnown() ? spec.recordDims() : null;
        for (int d = 0; d < shape.length; d++) {
            boolean declaredZero = dims != null
                    && d < dims.size()
                    && dims.get(d).isFixed()
                    && dims.get(d).value() == 0;
            if (shape[d] == 0 && !declaredZero) {
                throw emptyInput(spec, "shape " + Arrays.toString(shape) + " has a zero-sized dimension");
            }
        }
        if (dims != null) {
            boolean fits = dims.size() == shape.length;
            for (int d = 0; fits && d < shape.length; d++) {
                fits = !dims.get(d).isFixed() || dims.get(d).value() == shape[d];
            }
            if (!fits) {
                throw new RecordConversionException("Input '" + spec.name() + "' expects record shape "
                        + shapeOf(dims) + " (model shape " + spec.shapeString() + ") but the record gave "
                        + Arrays.toString(shape));
            }
        }
        return shape.clone();
    }

    /**
     * A zero-sized dimension never reaches ORT: kernels that divide by a length (mean pooling, integer
     * Div) crash the process with SIGFPE instead of failing the run.
     */
    private static RecordConversionException emptyInput(TensorSpec spec, String why) {
        return new RecordConversionException("Input '" + spec.name() + "' is empty: " + why + "; every free dimension"
                + " of a record must hold at least one value (model shape " + spec.shapeString() + ")");
    }

    private static String expected(TensorSpec spec) {
        ElementType t = spec.elementType();
        return t + " values ("
                + (t.javaArrayType() == null ? "unsupported" : t.javaArrayType().getSimpleName()) + ")";
    }

    public static String shapeOf(List<Dim> dims) {
        return dims.stream().map(Dim::toString).collect(Collectors.joining(",", "[", "]"));
    }

    public static String describe(List<TensorSpec> specs) {
        return specs.stream().map(TensorSpec::toString).collect(Collectors.joining(", "));
    }
}
