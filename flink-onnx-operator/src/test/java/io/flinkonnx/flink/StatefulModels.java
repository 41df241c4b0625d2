package io.flinkonnx.flink;

import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Recurrent test models with explicit state inputs and outputs, the state's batch axis second
 * ({@code [layers, batch, hidden]}, as ONNX's RNN/GRU/LSTM nodes and recurrent exports have it). Public
 * for the integration tests (this module's test-jar).
 */
public final class StatefulModels {
    public static final int FEATURES = 3;
    public static final int HIDDEN = 4;

    private StatefulModels() {}

    private static String[] names(String... names) {
        return names;
    }

    /**
     * An LSTM over a chunk of a free length: {@code x: FLOAT[batch, seq, 3]}, states {@code h, c:
     * FLOAT[1, batch, 4]} in, {@code y: FLOAT[batch, 4]} (the last hidden state) and {@code hn, cn:
     * FLOAT[1, batch, 4]} out. The states' batch axis is named like the records' ({@code batch}).
     */
    public static Path writeLstm(Path file) throws IOException {
        return writeLstm(file, 21);
    }

    /** {@link #writeLstm(Path)} with other weights ({@code seed} 21 is the default model's): a new version. */
    public static Path writeLstm(Path file, int seed) throws IOException {
        return new OnnxGraph("lstm_state")
                .input("x", ElementType.FLOAT, "batch", "seq", FEATURES)
                .input("h", ElementType.FLOAT, 1, "batch", HIDDEN)
                .input("c", ElementType.FLOAT, 1, "batch", HIDDEN)
                .output("y", ElementType.FLOAT, "batch", HIDDEN)
                .output("hn", ElementType.FLOAT, 1, "batch", HIDDEN)
                .output("cn", ElementType.FLOAT, 1, "batch", HIDDEN)
                .floatInitializer("W", TestModels.weights(4 * HIDDEN * FEATURES, seed), 1, 4 * HIDDEN, FEATURES)
                .floatInitializer("R", TestModels.weights(4 * HIDDEN * HIDDEN, seed + 1), 1, 4 * HIDDEN, HIDDEN)
                .floatInitializer("B", TestModels.weights(8 * HIDDEN, seed + 2), 1, 8 * HIDDEN)
                .longInitializer("axis0", new long[] {0}, 1)
                // ORT's CPU LSTM takes time-major input only: [seq, batch, 3]
                .node("Transpose", names("x"), names("xt"), "perm", new long[] {1, 0, 2})
                .node("LSTM", names("xt", "W", "R", "B", "", "h", "c"), names("", "hn", "cn"), "hidden_size", (long)
                        HIDDEN)
                .node("Squeeze", names("hn", "axis0"), names("y"))
                .writeTo(file);
    }

    /**
     * An LSTM as {@link #writeLstm(Path, int)} with {@code hidden} values per state and an output head: {@code y:
     * FLOAT[batch, 4]} is the last hidden state times a {@code [hidden, 4]} matrix, so versions of other state sizes
     * differ in their states alone.
     */
    public static Path writeLstmWithHead(Path file, int seed, int hidden) throws IOException {
        return new OnnxGraph("lstm_head")
                .input("x", ElementType.FLOAT, "batch", "seq", FEATURES)
                .input("h", ElementType.FLOAT, 1, "batch", hidden)
                .input("c", ElementType.FLOAT, 1, "batch", hidden)
                .output("y", ElementType.FLOAT, "batch", HIDDEN)
                .output("hn", ElementType.FLOAT, 1, "batch", hidden)
                .output("cn", ElementType.FLOAT, 1, "batch", hidden)
                .floatInitializer("W", TestModels.weights(4 * hidden * FEATURES, seed), 1, 4 * hidden, FEATURES)
                .floatInitializer("R", TestModels.weights(4 * hidden * hidden, seed + 1), 1, 4 * hidden, hidden)
                .floatInitializer("B", TestModels.weights(8 * hidden, seed + 2), 1, 8 * hidden)
                .floatInitializer("P", TestModels.weights(hidden * HIDDEN, seed + 3), hidden, HIDDEN)
                .longInitializer("axis0", new long[] {0}, 1)
                .node("Transpose", names("x"), names("xt"), "perm", new long[] {1, 0, 2})
                .node("LSTM", names("xt", "W", "R", "B", "", "h", "c"), names("", "hn", "cn"), "hidden_size", (long)
                        hidden)
                .node("Squeeze", names("hn", "axis0"), names("last"))
                .node("MatMul", names("last", "P"), names("y"))
                .writeTo(file);
    }

    /**
     * A GRU step as {@link #writeGruWithConstant(Path, int, int)} with an output head: {@code y: FLOAT[batch, 4]} is
     * the new state times a {@code [hidden, 4]} matrix, so versions of other state sizes differ in their states alone.
     */
    public static Path writeGruWithHead(Path file, int hidden, int seed) throws IOException {
        return new OnnxGraph("gru_head")
                .input("x", ElementType.FLOAT, "batch", FEATURES)
                .input("state", ElementType.FLOAT, 1, "n", hidden)
                .input("sr", ElementType.INT64)
                .output("y", ElementType.FLOAT, "batch", HIDDEN)
                .output("stateN", ElementType.FLOAT, 1, "n", hidden)
                .floatInitializer("W", TestModels.weights(3 * hidden * FEATURES, seed), 1, 3 * hidden, FEATURES)
                .floatInitializer("R", TestModels.weights(3 * hidden * hidden, seed + 1), 1, 3 * hidden, hidden)
                .floatInitializer("B", TestModels.weights(6 * hidden, seed + 2), 1, 6 * hidden)
                .floatInitializer("P", TestModels.weights(hidden * HIDDEN, seed + 3), hidden, HIDDEN)
                .floatInitializer("base", new float[] {16000f})
                .longInitializer("axis0", new long[] {0}, 1)
                .node("Cast", names("sr"), names("srf"), "to", 1L)
                .node("Div", names("srf", "base"), names("scale"))
                .node("Mul", names("x", "scale"), names("xs"))
                .node("Unsqueeze", names("xs", "axis0"), names("xt"))
                .node("GRU", names("xt", "W", "R", "B", "", "state"), names("", "stateN"), "hidden_size", (long) hidden)
                .node("Squeeze", names("stateN", "axis0"), names("last"))
                .node("MatMul", names("last", "P"), names("y"))
                .writeTo(file);
    }

    /**
     * A GRU step scaled by a constant: {@code x: FLOAT[batch, 3]}, {@code state: FLOAT[1, n, 4]} (a batch
     * symbol of its own: the axis must be given) and a scalar {@code sr: INT64[]} in; the GRU runs on
     * {@code x * sr / 16000}; {@code y: FLOAT[batch, 4]} and {@code stateN: FLOAT[1, n, 4]} out.
     */
    public static Path writeGruWithConstant(Path file) throws IOException {
        return writeGruWithConstant(file, HIDDEN);
    }

    /** {@link #writeGruWithConstant(Path)} with a state of {@code hidden} values per key (a changed model). */
    public static Path writeGruWithConstant(Path file, int hidden) throws IOException {
        return writeGruWithConstant(file, hidden, 31);
    }

    /** {@link #writeGruWithConstant(Path, int)} with other weights ({@code seed} 31 is the default model's). */
    public static Path writeGruWithConstant(Path file, int hidden, int seed) throws IOException {
        return new OnnxGraph("gru_const")
                .input("x", ElementType.FLOAT, "batch", FEATURES)
                .input("state", ElementType.FLOAT, 1, "n", hidden)
                .input("sr", ElementType.INT64)
                .output("y", ElementType.FLOAT, "batch", hidden)
                .output("stateN", ElementType.FLOAT, 1, "n", hidden)
                .floatInitializer("W", TestModels.weights(3 * hidden * FEATURES, seed), 1, 3 * hidden, FEATURES)
                .floatInitializer("R", TestModels.weights(3 * hidden * hidden, seed + 1), 1, 3 * hidden, hidden)
                .floatInitializer("B", TestModels.weights(6 * hidden, seed + 2), 1, 6 * hidden)
                .floatInitializer("base", new float[] {16000f})
                .longInitializer("axis0", new long[] {0}, 1)
                .node("Cast", names("sr"), names("srf"), "to", 1L)
                .node("Div", names("srf", "base"), names("scale"))
                .node("Mul", names("x", "scale"), names("xs"))
                .node("Unsqueeze", names("xs", "axis0"), names("xt"))
                .node("GRU", names("xt", "W", "R", "B", "", "state"), names("", "stateN"), "hidden_size", (long) hidden)
                .node("Squeeze", names("stateN", "axis0"), names("y"))
                .writeTo(file);
    }
}
