package io.flinkonnx.flink;

import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Path;

/** Test models for the hardening tests: graphs whose outputs depend on a record's own length. */
public final class HardeningModels {
    private HardeningModels() {}

    private static String[] names(String... names) {
        return names;
    }

    /**
     * {@code ids: INT64[batch,seq]} gives {@code avg = sum(ids) / seq: INT64[batch]}, an integer division
     * by the sequence length: a zero-length sequence makes ORT's Div kernel raise SIGFPE.
     */
    public static Path writeIntegerMeanBySequenceLength(Path file) throws IOException {
        return new OnnxGraph("int_mean")
                .input("ids", ElementType.INT64, "batch", "seq")
                .output("avg", ElementType.INT64, "batch")
                .longInitializer("axis1", new long[] {1}, 1)
                .longInitializer("one", new long[] {1})
                .node("Shape", names("ids"), names("shape"))
                .node("Gather", names("shape", "one"), names("len"), "axis", 0L)
                .node("ReduceSum", names("ids", "axis1"), names("sum"), "keepdims", 0L)
                .node("Div", names("sum", "len"), names("avg"))
                .writeTo(file);
    }

    /**
     * Mean pooling without a mask: {@code x: FLOAT[batch,seq]} gives {@code y = mean over seq: FLOAT[batch]}.
     * Padding a record changes its mean.
     */
    public static Path writeMeanPool(Path file) throws IOException {
        return new OnnxGraph("mean_pool")
                .input("x", ElementType.FLOAT, "batch", "seq")
                .output("y", ElementType.FLOAT, "batch")
                .node("ReduceMean", names("x"), names("y"), "axes", new long[] {1}, "keepdims", 0L)
                .writeTo(file);
    }

    /**
     * A recurrent model without a mask: {@code x: FLOAT[batch,seq,2]} through an RNN (tanh, hidden 3) gives
     * the last hidden state {@code h: FLOAT[batch,1,3]}. Padding changes the state.
     */
    public static Path writeRnn(Path file) throws IOException {
        return new OnnxGraph("rnn")
                .input("x", ElementType.FLOAT, "batch", "seq", 2)
                .output("h", ElementType.FLOAT, "batch", 1, 3)
                .floatInitializer("W", TestModels.weights(6, 11), 1, 3, 2)
                .floatInitializer("R", TestModels.weights(9, 12), 1, 3, 3)
                .floatInitializer("B", TestModels.weights(6, 13), 1, 6)
                // ORT's CPU RNN takes time-major input only: [seq, batch, 2] in, [1, batch, 3] out
                .node("Transpose", names("x"), names("xt"), "perm", new long[] {1, 0, 2})
                .node("RNN", names("xt", "W", "R", "B"), names("", "ht"), "hidden_size", 3L)
                .node("Transpose", names("ht"), names("h"), "perm", new long[] {1, 0, 2})
                .writeTo(file);
    }

    /** {@code x: FLOAT[batch,a,b]} (two free axes) gives {@code y = sum over a and b: FLOAT[batch]}. */
    public static Path writeSum2d(Path file) throws IOException {
        return new OnnxGraph("sum2d")
                .input("x", ElementType.FLOAT, "batch", "a", "b")
                .output("y", ElementType.FLOAT, "batch")
                .longInitializer("axes", new long[] {1, 2}, 2)
                .node("ReduceSum", names("x", "axes"), names("y"), "keepdims", 0L)
                .writeTo(file);
    }

    /**
     * A 1-d convolution of kernel 3 without padding over a free length, as text and audio models have:
     * {@code x: FLOAT[batch,1,len]} gives {@code y: FLOAT[batch,1,len-2]}, each output the sum of a window of
     * three. A record shorter than 3 (and the synthetic warm-up input, of length 1) cannot run.
     */
    public static Path writeConv1dKernel3(Path file) throws IOException {
        return new OnnxGraph("conv1d_k3")
                .input("x", ElementType.FLOAT, "batch", 1, "len")
                .output("y", ElementType.FLOAT, "batch", 1, "out")
                .floatInitializer("W", new float[] {1, 1, 1}, 1, 1, 3)
                .node("Conv", names("x", "W"), names("y"), "kernel_shape", new long[] {3})
                .writeTo(file);
    }
}
