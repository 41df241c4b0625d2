package io.flinkonnx.flink;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Packs records' inputs into one tensor per input, stacking them along the batch axis, in reused
 * native-order direct buffers (ORT then reads them without a copy). A tensor made here is backed by its
 * buffer: close it before the next {@link #pack}.
 */
final class TensorPacker {
    private final OrtEnvironment env;
    private final List<TensorSpec> specs;
    private final ByteBuffer[] buffers;

    TensorPacker(OrtEnvironment env, List<TensorSpec> specs) {
        this.env = env;
        this.specs = specs;
        this.buffers = new ByteBuffer[specs.size()];
    }

    /**
     * One tensor per input for {@code count} records; the caller closes them (on every path). Records
     * must agree on each input's per-record shape.
     */
    Map<String, OnnxTensor> pack(RecordInputs[] rows, int count) throws OrtException {
        Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
        try {
            for (int i = 0; i < specs.size(); i++) {
                tensors.put(specs.get(i).name(), packInput(i, rows, count));
            }
            return tensors;
        } catch (OrtException | RuntimeException e) {
            tensors.values().forEach(OnnxTensor::close);
            throw e;
        }
    }

    private OnnxTensor packInput(int input, RecordInputs[] rows, int count) throws OrtException {
        TensorSpec spec = specs.get(input);
        long[] recordShape = rows[0].shape(input);
        for (int r = 1; r < count; r++) {
            if (!Arrays.equals(recordShape, rows[r].shape(input))) {
                throw new RecordConversionException("Records of one batch disagree on the shape of input '"
                        + spec.name() + "': " + Arrays.toString(recordShape) + " and "
                        + Arrays.toString(rows[r].shape(input)));
            }
        }
        long[] shape = batchShape(spec, recordShape, count);
        ElementType type = spec.elementType();
        if (type == ElementType.STRING) {
            String[] flat = new String[rows[0].elementCount(input) * count];
            int pos = 0;
            for (int r = 0; r < count; r++) {
                String[] v = (String[]) rows[r].values(input);
                System.arraycopy(v, 0, flat, pos, v.length);
                pos += v.length;
            }
            return OnnxTensor.createTensor(env, flat, shape);
        }
        int perRecord = rows[0].elementCount(input);
        ByteBuffer buf = buffer(input, (long) perRecord * count * type.byteSize());
        switch (type) {
            case FLOAT: {
                java.nio.FloatBuffer fb = buf.asFloatBuffer();
                for (int r = 0; r < count; r++) {
                    fb.put((float[]) rows[r].values(input));
                }
                return OnnxTensor.createTensor(env, fb.flip(), shape);
            }
            case DOUBLE: {
                java.nio.DoubleBuffer db = buf.asDoubleBuffer();
                for (int r = 0; r < count; r++) {
                    db.put((double[]) rows[r].values(input));
                }
                return OnnxTensor.createTensor(env, db.flip(), shape);
            }
            case INT64: {
                java.nio.LongBuffer lb = buf.asLongBuffer();
                for (int r = 0; r < count; r++) {
                    lb.put((long[]) rows[r].values(input));
                }
                return OnnxTensor.createTensor(env, lb.flip(), shape);
            }
            case INT32: {
                java.nio.IntBuffer ib = buf.asIntBuffer();
                for (int r = 0; r < count; r++) {
                    ib.put((int[]) rows[r].values(input));
                }
                return OnnxTensor.createTensor(env, ib.flip(), shape);
            }
            case INT16: {
                java.nio.ShortBuffer sb = buf.asShortBuffer();
                for (int r = 0; r < count; r++) {
                    sb.put((short[]) rows[r].values(input));
                }
                return OnnxTensor.createTensor(env, sb.flip(), shape);
            }
            case INT8:
            case UINT8: {
                for (int r = 0; r < count; r++) {
                    buf.put((byte[]) rows[r].values(input));
                }
                return OnnxTensor.createTensor(env, buf.flip(), shape,
                        type == ElementType.UINT8 ? OnnxJavaType.UINT8 : OnnxJavaType.INT8);
            }
            case BOOL: {
                for (int r = 0; r < count; r++) {
                    for (boolean b : (boolean[]) rows[r].values(input)) {
                        buf.put(b ? (byte) 1 : (byte) 0);
                    }
                }
                return OnnxTensor.createTensor(env, buf.flip(), shape, OnnxJavaType.BOOL);
            }
            default:
                throw new RecordConversionException("Input '" + spec.name() + "' has element type " + type
                        + ", which records cannot feed yet");
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
        if (axis != 0 && count != 1) {
            throw new IllegalStateException("Stacking records along batch axis " + axis + " of input '" + spec.name()
                    + "' is not supported; only axis 0 batches several records");
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
            throw new IllegalStateException("Batch for input '" + specs.get(input).name() + "' needs " + bytes
                    + " bytes, more than one buffer holds");
        }
        ByteBuffer b = buffers[input];
        if (b == null || b.capacity() < bytes) {
            int capacity = (int) Math.min(Integer.MAX_VALUE, Math.max(bytes, b == null ? 64 : 2L * b.capacity()));
            b = ByteBuffer.allocateDirect(capacity).order(ByteOrder.nativeOrder());
            buffers[input] = b;
        }
        b.clear();
        return b;
    }
}
