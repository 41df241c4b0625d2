package io.flinkonnx.model;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A dense tensor read from an ONNX {@code TensorProto} (the {@code input_K.pb}/{@code output_K.pb} files
 * of ONNX's test data sets): name, element type, dims, and the values as one flat Java array of the
 * type's record array class ({@code float[]}, {@code long[]}, ...).
 */
@PublicEvolving
public final class TensorData implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String name;
    private final ElementType type;
    private final long[] dims;
    private final Object values;

    public TensorData(String name, ElementType type, long[] dims, Object values) {
        this.name = name;
        this.type = type;
        this.dims = dims.clone();
        this.values = values;
    }

    public String name() {
        return name;
    }

    public ElementType type() {
        return type;
    }

    public long[] dims() {
        return dims.clone();
    }

    /** The values, flat and row-major, as {@code type().javaArrayType()}. */
    public Object values() {
        return values;
    }

    /**
     * Reads a serialized {@code TensorProto} file; fails naming the file when it is not one, uses an
     * unsupported type, declares dims that are negative or too large, or holds fewer values than its dims
     * declare. Dims are checked against the bytes present before any value array is allocated.
     */
    public static TensorData read(Path file) throws IOException {
        TensorProto proto;
        try {
            proto = TensorProto.parseFrom(Files.readAllBytes(file));
        } catch (InvalidProtocolBufferException e) {
            throw new IOException("Not a serialized ONNX TensorProto: " + file + " (" + e.getMessage() + ")", e);
        }
        try {
            return of(proto);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Decodes a {@code TensorProto} held inline (typed fields) or as little-endian {@code raw_data}.
     *
     * @throws IllegalArgumentException when a dim is negative, the dims multiply to more elements than one
     *     Java array holds, the data holds fewer values than the dims declare, the data lies externally or
     *     the element type is not supported; checked before anything is allocated
     */
    public static TensorData of(TensorProto t) {
        ElementType type = ElementType.fromOnnxCode(t.getDataType());
        long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
        String what = "tensor '" + t.getName() + "' (" + type + ", dims " + Arrays.toString(dims) + ")";
        long count = elementCount(dims, what);
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            throw new IllegalArgumentException(what + " keeps its data externally; not supported here");
        }
        if (type.javaArrayType() == null) {
            throw new IllegalArgumentException(what + " has element type " + type + ", which is not supported");
        }
        int n = (int) count;
        checkDataPresent(t, type, n, what);
        boolean raw = t.hasRawData();
        ByteBuffer rawData = raw ? t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN) : null;
        Object values;
        switch (type) {
            case FLOAT: {
                float[] v = new float[n];
                if (raw) {
                    rawData.asFloatBuffer().get(v);
                } else {
                    for (int i = 0; i < n; i++) {
                        v[i] = t.getFloatData(i);
                    }
                }
                values = v;
                break;
            }
            case DOUBLE: {
                double[] v = new double[n];
                if (raw) {
                    rawData.asDoubleBuffer().get(v);
                } else {
                    for (int i = 0; i < n; i++) {
                        v[i] = t.getDoubleData(i);
                    }
                }
                values = v;
                break;
            }
            case INT64: {
                long[] v = new long[n];
                if (raw) {
                    rawData.asLongBuffer().get(v);
                } else {
                    for (int i = 0; i < n; i++) {
                        v[i] = t.getInt64Data(i);
                    }
                }
                values = v;
                break;
            }
            case INT32: {
                int[] v = new int[n];
                if (raw) {
                    rawData.asIntBuffer().get(v);
                } else {
                    for (int i = 0; i < n; i++) {
                        v[i] = t.getInt32Data(i);
                    }
                }
                values = v;
                break;
            }
            case FLOAT16:
            case BFLOAT16:
            case INT16: {
                short[] v = new short[n];
                for (int i = 0; i < n; i++) {
                    v[i] = raw ? rawData.getShort(2 * i) : (short) t.getInt32Data(i);
                }
                values = v;
                break;
            }
            case INT8:
            case UINT8: {
                byte[] v = new byte[n];
                for (int i = 0; i < n; i++) {
                    v[i] = raw ? rawData.get(i) : (byte) t.getInt32Data(i);
                }
                values = v;
                break;
            }
            case BOOL: {
                boolean[] v = new boolean[n];
                for (int i = 0; i < n; i++) {
                    v[i] = raw ? rawData.get(i) != 0 : t.getInt32Data(i) != 0;
                }
                values = v;
                break;
            }
            case STRING: {
                String[] v = new String[n];
                for (int i = 0; i < n; i++) {
                    ByteString s = t.getStringData(i);
                    v[i] = s.toString(StandardCharsets.UTF_8);
                }
                values = v;
                break;
            }
            default:
                throw new IllegalArgumentException(what + " has element type " + type + ", which is not supported");
        }
        return new TensorData(t.getName(), type, dims, values);
    }

    /** Largest array length every JVM allocates (a few header words below {@code Integer.MAX_VALUE}). */
    private static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

    /** The product of {@code dims}, refused when a dim is negative, it overflows, or no Java array holds it. */
    private static long elementCount(long[] dims, String what) {
        long count = 1;
        for (long d : dims) {
            if (d < 0) {
                throw new IllegalArgumentException(what + " has the negative dimension " + d
                        + ": a dense tensor's dims are all >= 0 (is it a sequence, map or optional value?)");
            }
        }
        for (long d : dims) {
            try {
                count = Math.multiplyExact(count, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(what + " declares a number of elements that overflows a 64-bit"
                        + " count: at most " + MAX_ARRAY_LENGTH + " elements are allowed");
            }
        }
        if (count > MAX_ARRAY_LENGTH) {
            throw new IllegalArgumentException(what + " declares " + count + " elements, more than one Java array holds"
                    + " (at most " + MAX_ARRAY_LENGTH + " elements are allowed)");
        }
        return count;
    }

    /** Fails unless {@code t} holds at least {@code n} values of {@code type}, in raw_data or the typed field. */
    private static void checkDataPresent(TensorProto t, ElementType type, int n, String what) {
        if (t.hasRawData() && type != ElementType.STRING) {
            long needed = (long) n * type.byteSize();
            int held = t.getRawData().size();
            if (held < needed) {
                throw new IllegalArgumentException(what + " declares " + n + " elements (" + needed + " bytes of "
                        + type.byteSize() + " each) but its raw_data holds " + held + " bytes: the file is truncated"
                        + " or its dims are wrong");
            }
            return;
        }
        int held;
        String field;
        switch (type) {
            case FLOAT:
                held = t.getFloatDataCount();
                field = "float_data";
                break;
            case DOUBLE:
                held = t.getDoubleDataCount();
                field = "double_data";
                break;
            case INT64:
                held = t.getInt64DataCount();
                field = "int64_data";
                break;
            case STRING:
                held = t.getStringDataCount();
                field = "string_data";
                break;
            default:
                held = t.getInt32DataCount();
                field = "int32_data";
                break;
        }
        if (held < n) {
            throw new IllegalArgumentException(what + " declares " + n + " elements but holds " + held + " in "
                    + field + (t.hasRawData() ? "" : " and has no raw_data") + ": the file is truncated or its dims are"
                    + " wrong");
        }
    }

    @Override
    public String toString() {
        return (name.isEmpty() ? "tensor" : name) + ":" + type + Arrays.toString(dims);
    }
}
