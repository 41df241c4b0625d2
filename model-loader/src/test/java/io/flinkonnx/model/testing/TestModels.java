package io.flinkonnx.model.testing;

import static io.flinkonnx.model.testing.OnnxGraph.names;

import io.flinkonnx.model.ElementType;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The test models of this project, made by code, each with a reference computed in plain Java
 * (independently of ONNX Runtime) from the same hand-set weights.
 */
public final class TestModels {
    private TestModels() {}

    /** A 2-layer MLP {@code y = relu(x W1 + b1) W2 + b2}, input {@code x:FLOAT[batch,in]}, output {@code y}. */
    public static final class Mlp {
        public final int in;
        public final int hidden;
        public final int out;
        public final float[] w1;
        public final float[] b1;
        public final float[] w2;
        public final float[] b2;

        public Mlp(int in, int hidden, int out) {
            this(in, hidden, out, 0);
        }

        /** An MLP of the same shape with other weights: {@code variant} 0 is the default one. */
        public Mlp(int in, int hidden, int out, int variant) {
            this.in = in;
            this.hidden = hidden;
            this.out = out;
            int seed = 1 + 4 * variant;
            this.w1 = weights(in * hidden, seed);
            this.b1 = weights(hidden, seed + 1);
            this.w2 = weights(hidden * out, seed + 2);
            this.b2 = weights(out, seed + 3);
        }

        /** The graph: Gemm, Relu, Gemm, with a symbolic batch axis named "batch". */
        public OnnxGraph graph() {
            return new OnnxGraph("mlp")
                    .input("x", ElementType.FLOAT, "batch", in)
                    .output("y", ElementType.FLOAT, "batch", out)
                    .floatInitializer("w1", w1, in, hidden)
                    .floatInitializer("b1", b1, hidden)
                    .floatInitializer("w2", w2, hidden, out)
                    .floatInitializer("b2", b2, out)
                    .node("Gemm", names("x", "w1", "b1"), names("h"))
                    .node("Relu", names("h"), names("hr"))
                    .node("Gemm", names("hr", "w2", "b2"), names("y"));
        }

        public Path writeTo(Path file) throws IOException {
            return graph().writeTo(file);
        }

        /** Same MLP, with w1 stored as external data in {@code location} relative to the model's folder. */
        public Path writeWithExternalWeights(Path file, String location) throws IOException {
            Path dir = file.toAbsolutePath().getParent();
            return new OnnxGraph("mlp_external")
                    .input("x", ElementType.FLOAT, "batch", in)
                    .output("y", ElementType.FLOAT, "batch", out)
                    .externalFloatInitializer("w1", w1, dir, location, in, hidden)
                    .floatInitializer("b1", b1, hidden)
                    .floatInitializer("w2", w2, hidden, out)
                    .floatInitializer("b2", b2, out)
                    .node("Gemm", names("x", "w1", "b1"), names("h"))
                    .node("Relu", names("h"), names("hr"))
                    .node("Gemm", names("hr", "w2", "b2"), names("y"))
                    .writeTo(file);
        }

        /** Reference output of one record, in double precision then rounded. */
        public float[] reference(float[] x) {
            double[] h = new double[hidden];
            for (int j = 0; j < hidden; j++) {
                double s = b1[j];
                for (int i = 0; i < in; i++) {
                    s += (double) x[i] * w1[i * hidden + j];
                }
                h[j] = Math.max(0, s);
            }
            float[] y = new float[out];
            for (int k = 0; k < out; k++) {
                double s = b2[k];
                for (int j = 0; j < hidden; j++) {
                    s += h[j] * w2[j * out + k];
                }
                y[k] = (float) s;
            }
            return y;
        }
    }

    /** A FLOAT tensor {@code [1, values.length]} named {@code name}, as ONNX golden vectors store one. */
    public static io.flinkonnx.model.proto.OnnxProto.TensorProto floatTensor(String name, float[] values) {
        java.nio.ByteBuffer buf =
                java.nio.ByteBuffer.allocate(values.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buf.putFloat(v);
        }
        return io.flinkonnx.model.proto.OnnxProto.TensorProto.newBuilder()
                .setName(name)
                .setDataType(ElementType.FLOAT.onnxCode())
                .addDims(1)
                .addDims(values.length)
                .setRawData(com.google.protobuf.ByteString.copyFrom(buf.array()))
                .build();
    }

    /** Deterministic, varied weights in [-0.5, 0.5]. */
    public static float[] weights(int n, int seed) {
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (float) (0.5 * Math.sin(seed * 7919.0 + i * 0.7311));
        }
        return w;
    }

    /** A deterministic input row of {@code n} features for record {@code k}. */
    public static float[] features(int k, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) Math.cos(k * 0.37 + i * 1.3);
        }
        return x;
    }

    /**
     * Two inputs, two outputs: {@code a, b: FLOAT[batch,4]} give {@code sum = a + b} and {@code prod = a * b}.
     */
    public static Path writeMultiInputMultiOutput(Path file) throws IOException {
        return new OnnxGraph("multi_io")
                .input("a", ElementType.FLOAT, "batch", 4)
                .input("b", ElementType.FLOAT, "batch", 4)
                .output("sum", ElementType.FLOAT, "batch", 4)
                .output("prod", ElementType.FLOAT, "batch", 4)
                .node("Add", names("a", "b"), names("sum"))
                .node("Mul", names("a", "b"), names("prod"))
                .writeTo(file);
    }

    /** {@code ids: INT64[batch,3]} gives {@code out = ids * 3 + 7} (INT64). */
    public static Path writeInt64Affine(Path file) throws IOException {
        return new OnnxGraph("int64_affine")
                .input("ids", ElementType.INT64, "batch", 3)
                .output("out", ElementType.INT64, "batch", 3)
                .longInitializer("three", new long[] {3}, 1)
                .longInitializer("seven", new long[] {7}, 1)
                .node("Mul", names("ids", "three"), names("scaled"))
                .node("Add", names("scaled", "seven"), names("out"))
                .writeTo(file);
    }

    /** The label encoder's vocabulary: {@code LABELS[i]} encodes to {@code i}, anything else to -1. */
    public static final String[] LABELS = {"card", "wire", "cash", "crypto"};

    /**
     * {@code category: STRING[batch,1]} gives {@code code: INT64[batch,1]} with ai.onnx.ml's LabelEncoder
     * (as scikit-learn's exporters emit it).
     */
    public static Path writeStringLabelEncoder(Path file) throws IOException {
        return new OnnxGraph("label_encoder")
                .opset("ai.onnx.ml", 2)
                .input("category", ElementType.STRING, "batch", 1)
                .output("code", ElementType.INT64, "batch", 1)
                .domainNode(
                        "ai.onnx.ml",
                        "LabelEncoder",
                        names("category"),
                        names("code"),
                        "keys_strings",
                        LABELS,
                        "values_int64s",
                        new long[] {0, 1, 2, 3},
                        "default_int64",
                        -1L)
                .writeTo(file);
    }

    /**
     * Plain ONNX over a free STRING dim: {@code words: STRING[batch,n]} gives {@code score: FLOAT[batch]}, the sum
     * over the record's words of {@code LABELS} index + 1 (1 for card ... 4 for crypto) and -1 for any other word
     * (the empty string too: padding a record with "" would change its score).
     */
    public static Path writeWordScore(Path file) throws IOException {
        return new OnnxGraph("word_score")
                .opset("ai.onnx.ml", 2)
                .input("words", ElementType.STRING, "batch", "n")
                .output("score", ElementType.FLOAT, "batch")
                .longInitializer("axis1", new long[] {1}, 1)
                .domainNode(
                        "ai.onnx.ml",
                        "LabelEncoder",
                        names("words"),
                        names("points"),
                        "keys_strings",
                        LABELS,
                        "values_floats",
                        new float[] {1, 2, 3, 4},
                        "default_float",
                        -1f)
                .node("ReduceSum", names("points", "axis1"), names("score"), "keepdims", 0L)
                .writeTo(file);
    }

    /** The ONNX Runtime Extensions' operator domain. */
    public static final String CONTRIB = "ai.onnx.contrib";

    /**
     * In-graph pre-processing with ONNX Runtime Extensions custom operators (domain {@code ai.onnx.contrib}):
     * {@code text: STRING[batch]} gives {@code length: FLOAT[batch]}, the number of characters (code points) of
     * the text once every run of digits is replaced by {@code #} (StringRegexReplace, then StringLength, then a
     * standard Cast). Loads only with the extensions registered.
     */
    public static Path writeDigitRunLength(Path file) throws IOException {
        return new OnnxGraph("digit_run_length")
                .opset(CONTRIB, 1)
                .input("text", ElementType.STRING, "batch")
                .output("length", ElementType.FLOAT, "batch")
                .stringInitializer("pattern", new String[] {"[0-9]+"})
                .stringInitializer("rewrite", new String[] {"#"})
                .domainNode(CONTRIB, "StringRegexReplace", names("text", "pattern", "rewrite"), names("masked"))
                .domainNode(CONTRIB, "StringLength", names("masked"), names("chars"))
                .node("Cast", names("chars"), names("length"), "to", (long) ElementType.FLOAT.onnxCode())
                .writeTo(file);
    }

    /**
     * An image-shaped model: {@code image: FLOAT[batch,3,4,4]} gives the per-channel mean
     * {@code mean: FLOAT[batch,3]} (GlobalAveragePool then Flatten).
     */
    public static Path writeChannelMean(Path file) throws IOException {
        return new OnnxGraph("channel_mean")
                .input("image", ElementType.FLOAT, "batch", 3, 4, 4)
                .output("mean", ElementType.FLOAT, "batch", 3)
                .node("GlobalAveragePool", names("image"), names("pooled"))
                .node("Flatten", names("pooled"), names("mean"), "axis", 1L)
                .writeTo(file);
    }

    /** Reference of {@link #writeChannelMean}: the mean of each 16-value channel of a flat 48-value record. */
    public static float[] channelMeanReference(float[] flat) {
        float[] m = new float[3];
        for (int c = 0; c < 3; c++) {
            double s = 0;
            for (int i = 0; i < 16; i++) {
                s += flat[c * 16 + i];
            }
            m[c] = (float) (s / 16);
        }
        return m;
    }

    /** An Identity model importing the default-domain opset {@code opset}. */
    public static Path writeIdentityWithOpset(Path file, long opset) throws IOException {
        return new OnnxGraph("identity")
                .opset("", opset)
                .input("x", ElementType.FLOAT, "batch", 2)
                .output("y", ElementType.FLOAT, "batch", 2)
                .node("Identity", names("x"), names("y"))
                .writeTo(file);
    }

    /**
     * {@code x: FLOAT[batch,seq]} reflect-padded by 2 on each side of seq: {@code y: FLOAT[batch,seq+4]}. It
     * needs a length of 2: a synthetic input of length 1 fails inside ORT, though the model is fine.
     */
    public static Path writeReflectPad(Path file) throws IOException {
        return new OnnxGraph("reflect")
                .input("x", ElementType.FLOAT, "batch", "seq")
                .output("y", ElementType.FLOAT, "batch", "padded")
                .longInitializer("pads", new long[] {0, 2, 0, 2}, 4)
                .node("Pad", names("x", "pads"), names("y"), "mode", "reflect")
                .writeTo(file);
    }

    /** An Identity model declaring IR version {@code ir}. */
    public static Path writeIdentityWithIrVersion(Path file, long ir) throws IOException {
        return new OnnxGraph("identity")
                .irVersion(ir)
                .input("x", ElementType.FLOAT, "batch", 2)
                .output("y", ElementType.FLOAT, "batch", 2)
                .node("Identity", names("x"), names("y"))
                .writeTo(file);
    }

    /**
     * {@code idx: INT64[batch,1]} gathers rows of a 10x2 table: {@code row: FLOAT[batch,1,2]} is
     * {@code [idx*10, idx*10+1]}. An index outside [-10, 9] makes ORT's run fail.
     */
    public static Path writeGather(Path file) throws IOException {
        float[] table = new float[20];
        for (int i = 0; i < 20; i++) {
            table[i] = (i / 2) * 10 + (i % 2);
        }
        return new OnnxGraph("gather")
                .input("idx", ElementType.INT64, "batch", 1)
                .output("row", ElementType.FLOAT, "batch", 1, 2)
                .floatInitializer("table", table, 10, 2)
                .node("Gather", names("table", "idx"), names("row"), "axis", 0L)
                .writeTo(file);
    }

    /**
     * A token model: {@code input_ids, attention_mask: INT64[batch,seq]} give
     * {@code masked = input_ids * attention_mask: INT64[batch,seq]} and
     * {@code length = sum(attention_mask): INT64[batch]}.
     */
    public static Path writeTokenModel(Path file) throws IOException {
        return new OnnxGraph("tokens")
                .input("input_ids", ElementType.INT64, "batch", "seq")
                .input("attention_mask", ElementType.INT64, "batch", "seq")
                .output("masked", ElementType.INT64, "batch", "seq")
                .output("length", ElementType.INT64, "batch")
                .longInitializer("axis1", new long[] {1}, 1)
                .node("Mul", names("input_ids", "attention_mask"), names("masked"))
                .node("ReduceSum", names("attention_mask", "axis1"), names("length"), "keepdims", 0L)
                .writeTo(file);
    }

    /** {@code x: FLOAT[1,4]} (batch fixed at 1, as some exporters write) gives {@code y = relu(x)}. */
    public static Path writeFixedBatchOfOne(Path file) throws IOException {
        return new OnnxGraph("fixed_one")
                .input("x", ElementType.FLOAT, 1, 4)
                .output("y", ElementType.FLOAT, 1, 4)
                .node("Relu", names("x"), names("y"))
                .writeTo(file);
    }

    /**
     * Half a graph for an accelerator, half CPU-only: {@code x: FLOAT[batch,8]} through a Gemm gives
     * {@code score: FLOAT[batch,2]}; {@code category: STRING[batch,1]} through ai.onnx.ml's LabelEncoder
     * (a CPU-only kernel) gives {@code code: INT64[batch,1]}.
     */
    public static Path writeMixedPlacement(Path file) throws IOException {
        return new OnnxGraph("mixed")
                .opset("ai.onnx.ml", 2)
                .input("x", ElementType.FLOAT, "batch", 8)
                .input("category", ElementType.STRING, "batch", 1)
                .output("score", ElementType.FLOAT, "batch", 2)
                .output("code", ElementType.INT64, "batch", 1)
                .floatInitializer("w", weights(16, 5), 8, 2)
                .floatInitializer("b", weights(2, 6), 2)
                .node("Gemm", names("x", "w", "b"), names("score"))
                .domainNode(
                        "ai.onnx.ml",
                        "LabelEncoder",
                        names("category"),
                        names("code"),
                        "keys_strings",
                        LABELS,
                        "values_int64s",
                        new long[] {0, 1, 2, 3},
                        "default_int64",
                        -1L)
                .writeTo(file);
    }

    /**
     * A model of a few hundred bytes whose run needs {@code values} floats per record (ORT's arena keeps them
     * after a run): x [batch, 1] -> Expand to [batch, values] -> ReduceSum over axis 1 -> y [batch, 1] =
     * x * values. For tests of memory measured against file size.
     */
    public static Path writeWide(Path file, long values) throws IOException {
        return new OnnxGraph("wide")
                .input("x", ElementType.FLOAT, "batch", 1)
                .output("y", ElementType.FLOAT, "batch", 1)
                .longInitializer("shape", new long[] {1, values}, 2)
                .longInitializer("axes", new long[] {1}, 1)
                .node("Expand", new String[] {"x", "shape"}, new String[] {"wide"})
                .node("ReduceSum", new String[] {"wide", "axes"}, new String[] {"y"})
                .writeTo(file);
    }
}
