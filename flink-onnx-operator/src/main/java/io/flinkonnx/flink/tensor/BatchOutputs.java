package io.flinkonnx.flink.tensor;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.annotation.Internal;

/**
 * The outputs of one {@code run}, copied out of ORT's memory once and read per record: the view is moved
 * to a record with {@link #at(int)} and handed to the decoder as an {@link OutputRow}.
 *
 * <p>Pinned outputs: when every output is a FLOAT, DOUBLE, INT64 or INT32 tensor with its batch axis first and
 * every record dim fixed (a classifier's {@code [N, classes]}), the run writes into tensors this instance owns
 * ({@link #pinned}): direct buffers made once, a tensor per batch size made once, and the values read into
 * arrays reused from batch to batch of one size. No output tensor, buffer or map is then allocated per run.
 * Close it ({@link #close}) to free them.
 */
@Internal
public final class BatchOutputs implements OutputRow, AutoCloseable {
    /** Outputs are pinned only up to this many bytes each for the largest batch: a runner keeps them for its life. */
    static final long MAX_PINNED_BYTES = 1L << 20;

    private final String model;
    private final List<TensorSpec> specs;
    private final List<String> names;
    private final Object[] data;
    private final long[][] shapes;
    private final Object[] values;
    private int count;
    private int record;
    private Map<String, long[]> paddedLengths = Map.of();
    private String modelVersion;
    private String modelSha256;

    /** The largest run whose outputs are pinned; 0 when they are not (see the class comment). */
    private int maxPinnedRows;
    /** Per output: values per record when outputs are pinned. */
    private final int[] recordValues;

    private ByteBuffer[] pinnedBuffers;
    /** Per batch size: the pinned tensors by output name (made on first use), or null. */
    private Map<String, OnnxTensor>[] pinnedBySize;
    /**
     * Per output: the array its values were last read into (reused by the next batch of the same size, never for a
     * batch of one, whose decoder is handed the array itself).
     */
    private final Object[] reusable;

    /** Outputs ORT allocates on each run (no pinning). */
    public BatchOutputs(String model, List<TensorSpec> specs) {
        this(model, specs, 0);
    }

    /**
     * Outputs of runs of up to {@code maxRows} records, pinned when every output allows it (see the class
     * comment).
     */
    @SuppressWarnings("unchecked")
    public BatchOutputs(String model, List<TensorSpec> specs, int maxRows) {
        this.model = model;
        this.specs = specs;
        this.names = specs.stream().map(TensorSpec::name).collect(Collectors.toUnmodifiableList());
        this.data = new Object[specs.size()];
        this.shapes = new long[specs.size()][];
        this.values = new Object[specs.size()];
        this.recordValues = new int[specs.size()];
        this.reusable = new Object[specs.size()];
        this.maxPinnedRows = maxRows > 0 && pinnable(specs, maxRows, recordValues) ? maxRows : 0;
        if (maxPinnedRows > 0) {
            pinnedBuffers = new ByteBuffer[specs.size()];
            pinnedBySize = new Map[maxPinnedRows + 1];
        }
    }

    /** Whether every output can be pinned for runs of {@code maxRows}; fills in each one's values per record. */
    private static boolean pinnable(List<TensorSpec> specs, int maxRows, int[] recordValues) {
        for (int i = 0; i < specs.size(); i++) {
            TensorSpec spec = specs.get(i);
            ElementType type = spec.elementType();
            if (spec.kind() != TensorSpec.Kind.TENSOR
                    || !spec.isShapeKnown()
                    || !spec.hasBatchAxis()
                    || spec.batchAxis() != 0
                    || (type != ElementType.FLOAT
                            && type != ElementType.DOUBLE
                            && type != ElementType.INT64
                            && type != ElementType.INT32)) {
                return false;
            }
            long values = 1;
            for (Dim d : spec.recordDims()) {
                if (!d.isFixed()) {
                    return false;
                }
                values *= d.value();
            }
            if (values <= 0 || values * maxRows * type.byteSize() > MAX_PINNED_BYTES) {
                return false;
            }
            recordValues[i] = (int) values;
        }
        return !specs.isEmpty();
    }

    /**
     * The tensors a run of {@code count} records writes its outputs into (then read them with {@link
     * #loadPinned}), or null when this instance does not pin outputs for that size. Owned by this instance: the
     * caller neither closes nor keeps them.
     */
    public Map<String, OnnxTensor> pinned(OrtEnvironment env, int count) throws OrtException {
        if (count < 1 || count > maxPinnedRows) {
            return null;
        }
        Map<String, OnnxTensor> tensors = pinnedBySize[count];
        if (tensors != null) {
            return tensors;
        }
        tensors = new LinkedHashMap<>();
        try {
            for (int i = 0; i < specs.size(); i++) {
                ElementCodec codec = ElementCodec.of(specs.get(i).elementType());
                if (pinnedBuffers[i] == null) {
                    pinnedBuffers[i] = ByteBuffer.allocateDirect(recordValues[i] * maxPinnedRows * codec.byteSize())
                            .order(ByteOrder.nativeOrder());
                }
                List<Dim> dims = specs.get(i).recordDims();
                long[] shape = new long[dims.size() + 1];
                shape[0] = count;
                for (int d = 0; d < dims.size(); d++) {
                    shape[d + 1] = dims.get(d).value();
                }
                ByteBuffer slice = pinnedBuffers[i]
                        .duplicate()
                        .order(ByteOrder.nativeOrder())
                        .position(recordValues[i] * count * codec.byteSize());
                tensors.put(specs.get(i).name(), codec.tensor(env, slice, shape));
            }
        } catch (OrtException | RuntimeException e) {
            tensors.values().forEach(OnnxTensor::close);
            throw e;
        }
        pinnedBySize[count] = tensors;
        return tensors;
    }

    /**
     * Reads the outputs a run of {@code count} records wrote into {@link #pinned}{@code (env, count)}, as {@link
     * #load} reads ORT's (nothing is padded along a pinned output's dims: they are all fixed).
     */
    public void loadPinned(int count, Map<String, long[]> paddedLengths) {
        this.count = count;
        this.paddedLengths = paddedLengths.isEmpty() ? Map.of() : new HashMap<>(paddedLengths);
        Map<String, OnnxTensor> tensors = pinnedBySize[count];
        for (int i = 0; i < specs.size(); i++) {
            OnnxTensor t = tensors.get(specs.get(i).name());
            shapes[i] = t.getInfo().getShape();
            values[i] = null;
            ElementCodec codec = ElementCodec.of(specs.get(i).elementType());
            int n = recordValues[i] * count;
            Object array = reusable[i];
            if (count == 1) {
                array = codec.newArray(n); // a run of one hands this very array to its decoder (slice): never reused
            } else if (array == null || Array.getLength(array) != n) {
                array = codec.newArray(n);
                reusable[i] = array;
            }
            codec.readInto(
                    pinnedBuffers[i].duplicate().order(ByteOrder.nativeOrder()).position(0), array);
            data[i] = array;
        }
    }

    /** Stops pinning (a run into the pinned tensors failed where one without them ran): frees them. */
    public void unpin() {
        close();
        maxPinnedRows = 0;
    }

    /** Whether runs write into tensors this instance owns (see the class comment). */
    public boolean pins() {
        return maxPinnedRows > 0;
    }

    /** Frees the pinned tensors; idempotent. */
    @Override
    public void close() {
        if (pinnedBySize != null) {
            for (int k = 0; k < pinnedBySize.length; k++) {
                if (pinnedBySize[k] != null) {
                    pinnedBySize[k].values().forEach(OnnxTensor::close);
                    pinnedBySize[k] = null;
                }
            }
        }
        if (pinnedBuffers != null) {
            Arrays.fill(pinnedBuffers, null);
        }
    }

    /**
     * Copies every output of {@code result} (a run over {@code count} records) out of native memory.
     * {@code paddedLengths} (symbol -> each record's own length) says which axes were padded: outputs that
     * carry such an axis are cut back to each record's length.
     */
    public void load(OrtSession.Result result, int count, Map<String, long[]> paddedLengths) throws OrtException {
        this.count = count;
        this.paddedLengths = paddedLengths.isEmpty() ? Map.of() : new HashMap<>(paddedLengths);
        for (int i = 0; i < specs.size(); i++) {
            String name = specs.get(i).name();
            OnnxValue v = result.get(name)
                    .orElseThrow(() -> new IllegalStateException(
                            "ONNX Runtime returned no output named '" + name + "' (outputs: " + names + ")"));
            data[i] = null;
            values[i] = null;
            if (v instanceof OnnxTensor) {
                OnnxTensor t = (OnnxTensor) v;
                shapes[i] = t.getInfo().getShape();
                data[i] = ElementCodec.ofOutput(ElementCodec.elementTypeOf(t.getInfo()))
                        .copyOut(t);
            } else {
                shapes[i] = new long[0];
                values[i] = v.getValue();
            }
        }
    }

    /** Names the model version these outputs come from ({@link #modelVersion()}). */
    public void version(String label, String sha256) {
        this.modelVersion = label;
        this.modelSha256 = sha256;
    }

    @Override
    public String modelVersion() {
        return modelVersion;
    }

    @Override
    public String modelUri() {
        return model;
    }

    @Override
    public String modelSha256() {
        return modelSha256;
    }

    /** The whole batch's values of tensor output {@code name}, flat; null for non-tensor outputs. */
    public Object batchValues(String name) {
        return data[indexOf(name)];
    }

    /** Points this view at record {@code index} of the batch. */
    public OutputRow at(int index) {
        this.record = index;
        return this;
    }

    @Override
    public List<String> names() {
        return names;
    }

    @Override
    public long[] shape(String name) {
        int i = indexOf(name);
        if (!batched(i)) {
            return shapes[i].clone();
        }
        long[] padded = recordShape(i);
        long[] own = ownShape(i, padded);
        return own == null ? padded : own;
    }

    /** This record's shape of batched output {@code i} when padding is to be cut off, else null. */
    private long[] ownShape(int i, long[] padded) {
        if (paddedLengths.isEmpty()) {
            return null;
        }
        List<Dim> dims = specs.get(i).recordDims();
        long[] own = null;
        for (int d = 0; d < dims.size() && d < padded.length; d++) {
            long[] lengths =
                    dims.get(d).isSymbolic() ? paddedLengths.get(dims.get(d).symbol()) : null;
            if (lengths != null && lengths[record] < padded[d]) {
                if (own == null) {
                    own = padded.clone();
                }
                own[d] = lengths[record];
            }
        }
        return own;
    }

    @Override
    public float[] floats(String name) {
        return (float[]) slice(name, float[].class, "floats");
    }

    @Override
    public double[] doubles(String name) {
        return (double[]) slice(name, double[].class, "doubles");
    }

    @Override
    public long[] longs(String name) {
        return (long[]) slice(name, long[].class, "longs");
    }

    @Override
    public int[] ints(String name) {
        return (int[]) slice(name, int[].class, "ints");
    }

    @Override
    public short[] shorts(String name) {
        return (short[]) slice(name, short[].class, "shorts");
    }

    @Override
    public byte[] bytes(String name) {
        return (byte[]) slice(name, byte[].class, "bytes");
    }

    @Override
    public boolean[] booleans(String name) {
        return (boolean[]) slice(name, boolean[].class, "booleans");
    }

    @Override
    public String[] strings(String name) {
        return (String[]) slice(name, String[].class, "strings");
    }

    @Override
    public Object value(String name) {
        int i = indexOf(name);
        if (values[i] == null) {
            return slice(name, data[i].getClass(), "value");
        }
        if (values[i] instanceof List && ((List<?>) values[i]).size() == count && count > 1) {
            return ((List<?>) values[i]).get(record);
        }
        return values[i];
    }

    @Override
    public float[] floats() {
        if (specs.size() != 1) {
            throw new RecordConversionException("floats() needs a model with one output, but " + model + " has " + names
                    + ": name the output, floats(\"name\")");
        }
        return floats(names.get(0));
    }

    /** Whether output {@code i} carries one row per record along its batch axis. */
    private boolean batched(int i) {
        int axis = specs.get(i).batchAxis();
        return specs.get(i).hasBatchAxis() && shapes[i].length > axis && shapes[i][axis] == count;
    }

    /** The run's shape of batched output {@code i} without its batch axis. */
    private long[] recordShape(int i) {
        int axis = specs.get(i).batchAxis();
        long[] shape = new long[shapes[i].length - 1];
        System.arraycopy(shapes[i], 0, shape, 0, axis);
        System.arraycopy(shapes[i], axis + 1, shape, axis, shape.length - axis);
        return shape;
    }

    private Object slice(String name, Class<?> wanted, String accessor) {
        int i = indexOf(name);
        Object all = data[i];
        if (all == null) {
            throw new RecordConversionException("Output '" + name + "' of " + model + " is not a tensor ("
                    + specs.get(i).kind() + "): read it with value(\"" + name + "\")");
        }
        if (all.getClass() != wanted) {
            throw new RecordConversionException(
                    "Output '" + name + "' of " + model + " is " + specs.get(i).elementType()
                            + " (" + all.getClass().getSimpleName() + "): read it with "
                            + ElementCodec.ofArray(all.getClass()).accessor()
                            + "(\"" + name + "\"), not " + accessor + "()");
        }
        if (!batched(i)) {
            if (count != 1) {
                throw new IllegalStateException(
                        "Output '" + name + "' has no batch axis but the run scored " + count + " records");
            }
            return all;
        }
        Object row = all;
        if (count > 1) {
            int length = Array.getLength(all) / count;
            row = Array.newInstance(all.getClass().getComponentType(), length);
            // Along batch axis k: for each index of the dims before k, this record's block of the dims after.
            int outer = 1;
            for (int d = 0; d < specs.get(i).batchAxis(); d++) {
                outer *= (int) shapes[i][d];
            }
            int inner = outer == 0 ? 0 : length / outer;
            for (int o = 0; o < outer; o++) {
                System.arraycopy(all, (o * count + record) * inner, row, o * inner, inner);
            }
        }
        if (paddedLengths.isEmpty()) {
            return row; // nothing was padded: no shape to cut back to (and none to compute per record)
        }
        long[] padded = recordShape(i);
        long[] own = ownShape(i, padded);
        return own == null ? row : Padding.cut(row, padded, own);
    }

    private int indexOf(String name) {
        int i = names.indexOf(name);
        if (i < 0) {
            throw new RecordConversionException("Model " + model + " has no output '" + name + "'; its outputs are "
                    + RecordInputs.describe(specs));
        }
        return i;
    }
}
