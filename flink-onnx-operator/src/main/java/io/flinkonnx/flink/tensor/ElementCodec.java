package io.flinkonnx.flink.tensor;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.TensorInfo;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.ElementType;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.ShortBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.annotation.Internal;

/**
 * Everything that depends on an element type, in one place: the Java array records carry, filling it,
 * writing it into a native-order buffer, making a tensor of that buffer, copying an output tensor back,
 * reading a value as a number, and the {@link OutputRow} accessor that returns it. One instance per
 * {@link ElementType} that records can feed ({@link #of}); outputs of other types are read through
 * {@link #ofOutput}.
 */
@Internal
public abstract class ElementCodec {
    private static final Map<ElementType, ElementCodec> CODECS = new EnumMap<>(ElementType.class);

    static {
        register(new Floats());
        register(new Doubles());
        register(new Longs());
        register(new Ints());
        register(new Shorts(ElementType.INT16, OnnxJavaType.INT16));
        register(new Shorts(ElementType.FLOAT16, OnnxJavaType.FLOAT16));
        register(new Shorts(ElementType.BFLOAT16, OnnxJavaType.BFLOAT16));
        register(new Bytes(ElementType.INT8, OnnxJavaType.INT8));
        register(new Bytes(ElementType.UINT8, OnnxJavaType.UINT8));
        register(new Booleans());
        register(new Strings());
    }

    private static void register(ElementCodec codec) {
        CODECS.put(codec.type, codec);
    }

    public final ElementType type;

    private ElementCodec(ElementType type) {
        this.type = type;
    }

    /** The codec of a type records can feed. */
    public static ElementCodec of(ElementType type) {
        ElementCodec codec = CODECS.get(type);
        if (codec == null) {
            throw new RecordConversionException(
                    "Element type " + type + " cannot be fed by records yet (supported: " + CODECS.keySet() + ")");
        }
        return codec;
    }

    /**
     * The codec that reads an output of {@code type}. ORT widens half floats to float on the way out, so
     * FLOAT16/BFLOAT16 outputs (and any other type ORT returns as floats) are read as FLOAT.
     */
    public static ElementCodec ofOutput(ElementType type) {
        ElementCodec codec = CODECS.get(type);
        return codec == null || codec instanceof Shorts && type != ElementType.INT16
                ? CODECS.get(ElementType.FLOAT)
                : codec;
    }

    /**
     * The ONNX element type of an ORT tensor. ORT's {@code OnnxTensorType.value} is not the ONNX code
     * (FLOAT is 10 there, 1 in ONNX), so the mapping goes by name.
     */
    public static ElementType elementTypeOf(TensorInfo info) {
        String name = info.onnxType.name().substring("ONNX_TENSOR_ELEMENT_DATA_TYPE_".length());
        try {
            return ElementType.valueOf(name);
        } catch (IllegalArgumentException e) {
            return ElementType.UNDEFINED;
        }
    }

    /** The codec whose Java array class is {@code arrayClass}, or null. */
    public static ElementCodec ofArray(Class<?> arrayClass) {
        for (ElementCodec c : CODECS.values()) {
            if (c.arrayType() == arrayClass) {
                return c;
            }
        }
        return null;
    }

    /** The Java array type records carry for this element type ({@code float[]} for FLOAT). */
    public abstract Class<?> arrayType();

    /** The {@link OutputRow} accessor that returns this codec's arrays. */
    public abstract String accessor();

    public final Object newArray(int length) {
        return Array.newInstance(arrayType().getComponentType(), length);
    }

    /** Fills {@code array} with {@code value} (strings: "", booleans: value != 0). */
    public abstract void fill(Object array, double value);

    /**
     * Fills {@code array} with the value one: 1.0 as a half float's bit pattern for FLOAT16/BFLOAT16, true
     * for BOOL. Synthetic inputs and derived masks use ones, never zeros: a zero divisor crashes ORT's
     * integer Div/Mod kernels (SIGFPE).
     */
    public void fillOnes(Object array) {
        fill(array, 1);
    }

    /** Bytes one element takes in a packed buffer. */
    public final int byteSize() {
        return Math.max(1, type.byteSize());
    }

    /** Whether values are packed through a native buffer (all but STRING). */
    public boolean buffered() {
        return true;
    }

    /** Appends {@code values} at the buffer's position. */
    public abstract void put(ByteBuffer buffer, Object values);

    /**
     * {@code count} values read from {@code buffer} at its position, as {@link #put} wrote them, into a new
     * array (the buffer's position is left where it was).
     */
    public Object read(ByteBuffer buffer, int count) {
        Object array = newArray(count);
        readInto(buffer, array);
        return array;
    }

    /**
     * Fills {@code array} (this type's, see {@link #newArray}) with values read from {@code buffer} at its position,
     * in the buffer's byte order (the buffer's position is left where it was).
     */
    public void readInto(ByteBuffer buffer, Object array) {
        ByteBuffer b = buffer.duplicate().order(buffer.order());
        if (array instanceof float[]) {
            b.asFloatBuffer().get((float[]) array);
        } else if (array instanceof double[]) {
            b.asDoubleBuffer().get((double[]) array);
        } else if (array instanceof long[]) {
            b.asLongBuffer().get((long[]) array);
        } else if (array instanceof int[]) {
            b.asIntBuffer().get((int[]) array);
        } else if (array instanceof short[]) {
            b.asShortBuffer().get((short[]) array);
        } else if (array instanceof byte[]) {
            b.get((byte[]) array);
        } else if (array instanceof boolean[]) {
            boolean[] booleans = (boolean[]) array;
            for (int i = 0; i < booleans.length; i++) {
                booleans[i] = b.get() != 0;
            }
        } else {
            throw new IllegalStateException(type + " values are not read back from a buffer");
        }
    }

    /** A tensor of the buffer's content [0, position), backed by it. */
    public abstract OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException;

    /** A copy of an output tensor's values, flat. */
    public abstract Object copyOut(OnnxTensor tensor) throws OrtException;

    /** Element {@code i} of {@code array} as a number (unsigned for UINT8, 0/1 for BOOL). */
    public abstract double number(Object array, int i);

    private static final class Floats extends ElementCodec {
        Floats() {
            super(ElementType.FLOAT);
        }

        @Override
        public Class<?> arrayType() {
            return float[].class;
        }

        @Override
        public String accessor() {
            return "floats";
        }

        @Override
        public void fill(Object array, double value) {
            Arrays.fill((float[]) array, (float) value);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            float[] v = (float[]) values;
            buffer.asFloatBuffer().put(v);
            buffer.position(buffer.position() + 4 * v.length);
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip().asFloatBuffer(), shape);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) throws OrtException {
            FloatBuffer b = tensor.getFloatBuffer();
            if (b == null) {
                throw new RecordConversionException(
                        "Output element type " + tensor.getInfo().type + " is not supported");
            }
            if (b.hasArray() && b.arrayOffset() == 0 && b.position() == 0 && b.remaining() == b.array().length) {
                return b.array(); // ORT's get*Buffer returns a fresh heap copy: take it, do not copy it again
            }
            float[] a = new float[b.remaining()];
            b.get(a);
            return a;
        }

        @Override
        public double number(Object array, int i) {
            return ((float[]) array)[i];
        }
    }

    private static final class Doubles extends ElementCodec {
        Doubles() {
            super(ElementType.DOUBLE);
        }

        @Override
        public Class<?> arrayType() {
            return double[].class;
        }

        @Override
        public String accessor() {
            return "doubles";
        }

        @Override
        public void fill(Object array, double value) {
            Arrays.fill((double[]) array, value);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            double[] v = (double[]) values;
            buffer.asDoubleBuffer().put(v);
            buffer.position(buffer.position() + 8 * v.length);
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip().asDoubleBuffer(), shape);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) {
            DoubleBuffer b = tensor.getDoubleBuffer();
            if (b.hasArray() && b.arrayOffset() == 0 && b.position() == 0 && b.remaining() == b.array().length) {
                return b.array(); // ORT's get*Buffer returns a fresh heap copy: take it, do not copy it again
            }
            double[] a = new double[b.remaining()];
            b.get(a);
            return a;
        }

        @Override
        public double number(Object array, int i) {
            return ((double[]) array)[i];
        }
    }

    private static final class Longs extends ElementCodec {
        Longs() {
            super(ElementType.INT64);
        }

        @Override
        public Class<?> arrayType() {
            return long[].class;
        }

        @Override
        public String accessor() {
            return "longs";
        }

        @Override
        public void fill(Object array, double value) {
            Arrays.fill((long[]) array, (long) value);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            long[] v = (long[]) values;
            buffer.asLongBuffer().put(v);
            buffer.position(buffer.position() + 8 * v.length);
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip().asLongBuffer(), shape);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) {
            LongBuffer b = tensor.getLongBuffer();
            if (b.hasArray() && b.arrayOffset() == 0 && b.position() == 0 && b.remaining() == b.array().length) {
                return b.array(); // ORT's get*Buffer returns a fresh heap copy: take it, do not copy it again
            }
            long[] a = new long[b.remaining()];
            b.get(a);
            return a;
        }

        @Override
        public double number(Object array, int i) {
            return ((long[]) array)[i];
        }
    }

    private static final class Ints extends ElementCodec {
        Ints() {
            super(ElementType.INT32);
        }

        @Override
        public Class<?> arrayType() {
            return int[].class;
        }

        @Override
        public String accessor() {
            return "ints";
        }

        @Override
        public void fill(Object array, double value) {
            Arrays.fill((int[]) array, (int) value);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            int[] v = (int[]) values;
            buffer.asIntBuffer().put(v);
            buffer.position(buffer.position() + 4 * v.length);
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip().asIntBuffer(), shape);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) {
            IntBuffer b = tensor.getIntBuffer();
            if (b.hasArray() && b.arrayOffset() == 0 && b.position() == 0 && b.remaining() == b.array().length) {
                return b.array(); // ORT's get*Buffer returns a fresh heap copy: take it, do not copy it again
            }
            int[] a = new int[b.remaining()];
            b.get(a);
            return a;
        }

        @Override
        public double number(Object array, int i) {
            return ((int[]) array)[i];
        }
    }

    /** INT16, and FLOAT16/BFLOAT16 as their raw 16-bit patterns. */
    private static final class Shorts extends ElementCodec {
        private final OnnxJavaType javaType;

        Shorts(ElementType type, OnnxJavaType javaType) {
            super(type);
            this.javaType = javaType;
        }

        @Override
        public Class<?> arrayType() {
            return short[].class;
        }

        @Override
        public String accessor() {
            return "shorts";
        }

        @Override
        public void fill(Object array, double value) {
            short bits = type == ElementType.FLOAT16
                    ? HalfFloats.toFp16((float) value)
                    : type == ElementType.BFLOAT16 ? HalfFloats.toBf16((float) value) : (short) value;
            Arrays.fill((short[]) array, bits);
        }

        @Override
        public void fillOnes(Object array) {
            // 1.0 as binary16 (0x3C00) and bfloat16 (0x3F80) bit patterns; 1 for INT16
            short one =
                    type == ElementType.FLOAT16 ? (short) 0x3C00 : type == ElementType.BFLOAT16 ? (short) 0x3F80 : 1;
            Arrays.fill((short[]) array, one);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            short[] v = (short[]) values;
            buffer.asShortBuffer().put(v);
            buffer.position(buffer.position() + 2 * v.length);
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip().asShortBuffer(), shape, javaType);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) {
            ShortBuffer b = tensor.getShortBuffer();
            if (b.hasArray() && b.arrayOffset() == 0 && b.position() == 0 && b.remaining() == b.array().length) {
                return b.array(); // ORT's get*Buffer returns a fresh heap copy: take it, do not copy it again
            }
            short[] a = new short[b.remaining()];
            b.get(a);
            return a;
        }

        @Override
        public double number(Object array, int i) {
            short bits = ((short[]) array)[i];
            if (type == ElementType.FLOAT16) {
                return HalfFloats.fp16(bits);
            }
            return type == ElementType.BFLOAT16 ? Float.intBitsToFloat((bits & 0xFFFF) << 16) : bits;
        }
    }

    /** INT8, and UINT8 read as unsigned. */
    private static final class Bytes extends ElementCodec {
        private final OnnxJavaType javaType;

        Bytes(ElementType type, OnnxJavaType javaType) {
            super(type);
            this.javaType = javaType;
        }

        @Override
        public Class<?> arrayType() {
            return byte[].class;
        }

        @Override
        public String accessor() {
            return "bytes";
        }

        @Override
        public void fill(Object array, double value) {
            Arrays.fill((byte[]) array, (byte) value);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            buffer.put((byte[]) values);
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip(), shape, javaType);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) {
            ByteBuffer b = tensor.getByteBuffer();
            byte[] a = new byte[b.remaining()];
            b.get(a);
            return a;
        }

        @Override
        public double number(Object array, int i) {
            byte v = ((byte[]) array)[i];
            return type == ElementType.UINT8 ? Byte.toUnsignedInt(v) : v;
        }
    }

    private static final class Booleans extends ElementCodec {
        Booleans() {
            super(ElementType.BOOL);
        }

        @Override
        public Class<?> arrayType() {
            return boolean[].class;
        }

        @Override
        public String accessor() {
            return "booleans";
        }

        @Override
        public void fill(Object array, double value) {
            // Booleans pad false whatever the pad value (a pad id is a number, not a truth value).
            Arrays.fill((boolean[]) array, false);
        }

        @Override
        public void fillOnes(Object array) {
            Arrays.fill((boolean[]) array, true);
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            for (boolean b : (boolean[]) values) {
                buffer.put(b ? (byte) 1 : (byte) 0);
            }
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) throws OrtException {
            return OnnxTensor.createTensor(env, buffer.flip(), shape, OnnxJavaType.BOOL);
        }

        @Override
        public Object copyOut(OnnxTensor tensor) {
            ByteBuffer b = tensor.getByteBuffer();
            boolean[] a = new boolean[b.remaining()];
            for (int k = 0; k < a.length; k++) {
                a[k] = b.get() != 0;
            }
            return a;
        }

        @Override
        public double number(Object array, int i) {
            return ((boolean[]) array)[i] ? 1 : 0;
        }
    }

    /** Strings are not packed in a native buffer: ORT copies them from a {@code String[]}. */
    private static final class Strings extends ElementCodec {
        Strings() {
            super(ElementType.STRING);
        }

        @Override
        public Class<?> arrayType() {
            return String[].class;
        }

        @Override
        public String accessor() {
            return "strings";
        }

        @Override
        public boolean buffered() {
            return false;
        }

        @Override
        public void fill(Object array, double value) {
            Arrays.fill((String[]) array, "");
        }

        @Override
        public void put(ByteBuffer buffer, Object values) {
            throw new UnsupportedOperationException("STRING values are not packed in a buffer");
        }

        @Override
        public OnnxTensor tensor(OrtEnvironment env, ByteBuffer buffer, long[] shape) {
            throw new UnsupportedOperationException("STRING tensors are made from a String[]");
        }

        @Override
        public Object copyOut(OnnxTensor tensor) throws OrtException {
            List<String> flat = new ArrayList<>();
            flatten(tensor.getValue(), flat);
            return flat.toArray(new String[0]);
        }

        @Override
        public double number(Object array, int i) {
            throw new UnsupportedOperationException("STRING values are compared for equality, not as numbers");
        }

        private static void flatten(Object value, List<String> out) {
            if (value instanceof String) {
                out.add((String) value);
            } else if (value != null && value.getClass().isArray()) {
                for (int k = 0; k < Array.getLength(value); k++) {
                    flatten(Array.get(value, k), out);
                }
            }
        }
    }
}
