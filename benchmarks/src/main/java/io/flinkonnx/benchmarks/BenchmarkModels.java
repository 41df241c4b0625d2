package io.flinkonnx.benchmarks;

import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;

/**
 * The benchmark models, written by code: a small MLP, a ResNet-18 (random weights, real architecture) and a
 * one-step LSTM with explicit state inputs and outputs.
 */
final class BenchmarkModels {
    static final int MLP_FEATURES = 64;
    static final int IMAGE_VALUES = 3 * 224 * 224;
    static final int LSTM_FEATURES = 16;
    static final int LSTM_HIDDEN = 64;

    private BenchmarkModels() {}

    /** MLP 64 -> 256 -> 256 -> 10 (two hidden layers). */
    static Path writeMlp(Path file) throws IOException {
        return writeMlp(file, 0);
    }

    /** The same MLP with other weights: {@code variant} 0 is the one of {@link #writeMlp(Path)}. */
    static Path writeMlp(Path file, int variant) throws IOException {
        TestModels.Mlp first = new TestModels.Mlp(MLP_FEATURES, 256, 256, variant);
        TestModels.Mlp second = new TestModels.Mlp(256, 256, 10, variant);
        return new OnnxGraph("mlp_64_256_256_10")
                .input("x", ElementType.FLOAT, "batch", MLP_FEATURES)
                .output("y", ElementType.FLOAT, "batch", 10)
                .floatInitializer("w1", first.w1, MLP_FEATURES, 256)
                .floatInitializer("b1", first.b1, 256)
                .floatInitializer("w2", first.w2, 256, 256)
                .floatInitializer("b2", first.b2, 256)
                .floatInitializer("w3", second.w2, 256, 10)
                .floatInitializer("b3", second.b2, 10)
                .node("Gemm", new String[] {"x", "w1", "b1"}, new String[] {"h1"})
                .node("Relu", new String[] {"h1"}, new String[] {"r1"})
                .node("Gemm", new String[] {"r1", "w2", "b2"}, new String[] {"h2"})
                .node("Relu", new String[] {"h2"}, new String[] {"r2"})
                .node("Gemm", new String[] {"r2", "w3", "b3"}, new String[] {"y"})
                .writeTo(file);
    }

    /**
     * ResNet-18 for 224x224 images (torchvision's layout, batch norm folded into the convolutions), He
     * initialized: 11.7 M parameters, 1.8 GFLOPs per image.
     */
    static Path writeResNet18(Path file) throws IOException {
        ResNet net = new ResNet();
        OnnxGraph g = net.graph;
        g.input("image", ElementType.FLOAT, "batch", 3, 224, 224).output("logits", ElementType.FLOAT, "batch", 1000);
        String x = net.conv("image", 3, 64, 7, 2, 3, true);
        g.node(
                "MaxPool",
                new String[] {x},
                new String[] {"pool1"},
                "kernel_shape",
                new long[] {3, 3},
                "strides",
                new long[] {2, 2},
                "pads",
                new long[] {1, 1, 1, 1});
        x = "pool1";
        int channels = 64;
        int[] widths = {64, 128, 256, 512};
        for (int stage = 0; stage < 4; stage++) {
            for (int block = 0; block < 2; block++) {
                int stride = stage > 0 && block == 0 ? 2 : 1;
                x = net.basicBlock(x, channels, widths[stage], stride);
                channels = widths[stage];
            }
        }
        g.node("GlobalAveragePool", new String[] {x}, new String[] {"gap"});
        g.node("Flatten", new String[] {"gap"}, new String[] {"features"}, "axis", 1L);
        g.floatInitializer("fc_w", net.weights(512 * 1000, 512), 512, 1000);
        g.floatInitializer("fc_b", new float[1000], 1000);
        g.node("Gemm", new String[] {"features", "fc_w", "fc_b"}, new String[] {"logits"});
        return g.writeTo(file);
    }

    /**
     * One LSTM step per record, the state kept outside: {@code x: FLOAT[batch, 16]}, {@code h, c: FLOAT[1,
     * batch, 64]} in; {@code y: FLOAT[batch, 64]} (the new hidden state) and {@code hn, cn: FLOAT[1, batch,
     * 64]} out. Weights uniform in +-1/sqrt(hidden), as PyTorch initializes them.
     */
    static Path writeLstm(Path file) throws IOException {
        int in = LSTM_FEATURES;
        int hidden = LSTM_HIDDEN;
        Random random = new Random(64);
        return new OnnxGraph("lstm_16_64_step")
                .input("x", ElementType.FLOAT, "batch", in)
                .input("h", ElementType.FLOAT, 1, "batch", hidden)
                .input("c", ElementType.FLOAT, 1, "batch", hidden)
                .output("y", ElementType.FLOAT, "batch", hidden)
                .output("hn", ElementType.FLOAT, 1, "batch", hidden)
                .output("cn", ElementType.FLOAT, 1, "batch", hidden)
                .floatInitializer("W", uniform(random, 4 * hidden * in, hidden), 1, 4 * hidden, in)
                .floatInitializer("R", uniform(random, 4 * hidden * hidden, hidden), 1, 4 * hidden, hidden)
                .floatInitializer("B", uniform(random, 8 * hidden, hidden), 1, 8 * hidden)
                .longInitializer("axis0", new long[] {0}, 1)
                .node("Unsqueeze", new String[] {"x", "axis0"}, new String[] {"xt"})
                .node(
                        "LSTM",
                        new String[] {"xt", "W", "R", "B", "", "h", "c"},
                        new String[] {"", "hn", "cn"},
                        "hidden_size",
                        (long) hidden)
                .node("Squeeze", new String[] {"hn", "axis0"}, new String[] {"y"})
                .writeTo(file);
    }

    private static float[] uniform(Random random, int n, int hidden) {
        float bound = (float) (1 / Math.sqrt(hidden));
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (random.nextFloat() * 2 - 1) * bound;
        }
        return w;
    }

    private static final class ResNet {
        final OnnxGraph graph = new OnnxGraph("resnet18");
        final Random random = new Random(18);
        int counter;

        float[] weights(int n, int fanIn) {
            float[] w = new float[n];
            double std = Math.sqrt(2.0 / fanIn);
            for (int i = 0; i < n; i++) {
                w[i] = (float) (random.nextGaussian() * std);
            }
            return w;
        }

        String conv(String input, int in, int out, int kernel, int stride, int pad, boolean relu) {
            String name = "conv" + (counter++);
            graph.floatInitializer(
                    name + "_w", weights(out * in * kernel * kernel, in * kernel * kernel), out, in, kernel, kernel);
            graph.floatInitializer(name + "_b", new float[out], out);
            graph.node(
                    "Conv",
                    new String[] {input, name + "_w", name + "_b"},
                    new String[] {name},
                    "kernel_shape",
                    new long[] {kernel, kernel},
                    "strides",
                    new long[] {stride, stride},
                    "pads",
                    new long[] {pad, pad, pad, pad});
            if (!relu) {
                return name;
            }
            graph.node("Relu", new String[] {name}, new String[] {name + "_relu"});
            return name + "_relu";
        }

        String basicBlock(String input, int in, int out, int stride) {
            String a = conv(input, in, out, 3, stride, 1, true);
            String b = conv(a, out, out, 3, 1, 1, false);
            String shortcut = stride != 1 || in != out ? conv(input, in, out, 1, stride, 0, false) : input;
            String sum = "add" + (counter++);
            graph.node("Add", new String[] {b, shortcut}, new String[] {sum});
            graph.node("Relu", new String[] {sum}, new String[] {sum + "_relu"});
            return sum + "_relu";
        }
    }
}
