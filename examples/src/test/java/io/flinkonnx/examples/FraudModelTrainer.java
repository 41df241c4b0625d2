package io.flinkonnx.examples;

import com.google.protobuf.ByteString;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.testing.OnnxGraph;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;

/**
 * The script that trained and exported {@code src/main/resources/models/fraud-mlp.onnx} and its golden
 * vectors: a 8-16-2 MLP (ReLU, softmax) fitted by full-batch gradient descent on 20,000 synthetic
 * transactions from {@link FraudFeatures}, in plain Java (deterministic: same bytes every run), exported
 * on the ONNX protobuf. Regenerate with
 * {@code ./mvnw -pl examples -am test -Dtest=BundledModelTest -Dsurefire.failIfNoSpecifiedTests=false -Dregenerate=true}.
 */
public final class FraudModelTrainer {
    static final int HIDDEN = 16;
    static final int SAMPLES = 20_000;
    static final int EPOCHS = 300;

    final float[] w1 = new float[FraudFeatures.WIDTH * HIDDEN];
    final float[] b1 = new float[HIDDEN];
    final float[] w2 = new float[HIDDEN * 2];
    final float[] b2 = new float[2];

    /** Draws the data, trains, returns the trained model. */
    static FraudModelTrainer train() {
        SplittableRandom random = new SplittableRandom(2026);
        float[][] x = new float[SAMPLES][];
        int[] y = new int[SAMPLES];
        for (int i = 0; i < SAMPLES; i++) {
            x[i] = FraudFeatures.draw(random);
            y[i] = random.nextDouble() < 1 / (1 + Math.exp(-FraudFeatures.fraudLogit(x[i]))) ? 1 : 0;
        }
        FraudModelTrainer m = new FraudModelTrainer();
        for (int i = 0; i < m.w1.length; i++) {
            m.w1[i] = (float) ((random.nextDouble() - 0.5) * 0.6);
        }
        for (int i = 0; i < m.w2.length; i++) {
            m.w2[i] = (float) ((random.nextDouble() - 0.5) * 0.6);
        }
        double lr = 0.5;
        for (int epoch = 0; epoch < EPOCHS; epoch++) {
            double[] gw1 = new double[m.w1.length];
            double[] gb1 = new double[HIDDEN];
            double[] gw2 = new double[m.w2.length];
            double[] gb2 = new double[2];
            for (int i = 0; i < SAMPLES; i++) {
                double[] h = new double[HIDDEN];
                for (int j = 0; j < HIDDEN; j++) {
                    double s = m.b1[j];
                    for (int k = 0; k < FraudFeatures.WIDTH; k++) {
                        s += x[i][k] * m.w1[k * HIDDEN + j];
                    }
                    h[j] = Math.max(0, s);
                }
                double[] p = softmax(logits(m, h));
                for (int c = 0; c < 2; c++) {
                    double d = p[c] - (y[i] == c ? 1 : 0);
                    gb2[c] += d;
                    for (int j = 0; j < HIDDEN; j++) {
                        gw2[j * 2 + c] += d * h[j];
                    }
                }
                for (int j = 0; j < HIDDEN; j++) {
                    if (h[j] <= 0) {
                        continue;
                    }
                    double dh =
                            (p[0] - (y[i] == 0 ? 1 : 0)) * m.w2[j * 2] + (p[1] - (y[i] == 1 ? 1 : 0)) * m.w2[j * 2 + 1];
                    gb1[j] += dh;
                    for (int k = 0; k < FraudFeatures.WIDTH; k++) {
                        gw1[k * HIDDEN + j] += dh * x[i][k];
                    }
                }
            }
            for (int i = 0; i < m.w1.length; i++) {
                m.w1[i] -= (float) (lr * gw1[i] / SAMPLES);
            }
            for (int i = 0; i < HIDDEN; i++) {
                m.b1[i] -= (float) (lr * gb1[i] / SAMPLES);
            }
            for (int i = 0; i < m.w2.length; i++) {
                m.w2[i] -= (float) (lr * gw2[i] / SAMPLES);
            }
            for (int c = 0; c < 2; c++) {
                m.b2[c] -= (float) (lr * gb2[c] / SAMPLES);
            }
        }
        return m;
    }

    private static double[] logits(FraudModelTrainer m, double[] h) {
        double[] z = new double[2];
        for (int c = 0; c < 2; c++) {
            z[c] = m.b2[c];
            for (int j = 0; j < HIDDEN; j++) {
                z[c] += h[j] * m.w2[j * 2 + c];
            }
        }
        return z;
    }

    private static double[] softmax(double[] z) {
        double max = Math.max(z[0], z[1]);
        double e0 = Math.exp(z[0] - max);
        double e1 = Math.exp(z[1] - max);
        return new double[] {e0 / (e0 + e1), e1 / (e0 + e1)};
    }

    /** [P(legit), P(fraud)] of one transaction, in double precision. */
    float[] predict(float[] f) {
        double[] h = new double[HIDDEN];
        for (int j = 0; j < HIDDEN; j++) {
            double s = b1[j];
            for (int k = 0; k < FraudFeatures.WIDTH; k++) {
                s += f[k] * w1[k * HIDDEN + j];
            }
            h[j] = Math.max(0, s);
        }
        double[] p = softmax(logits(this, h));
        return new float[] {(float) p[0], (float) p[1]};
    }

    /** Writes the ONNX model: features FLOAT[batch,8] -> probabilities FLOAT[batch,2]. */
    void writeModel(Path file) throws IOException {
        new OnnxGraph("fraud_mlp")
                .input("features", ElementType.FLOAT, "batch", FraudFeatures.WIDTH)
                .output("probabilities", ElementType.FLOAT, "batch", 2)
                .floatInitializer("w1", w1, FraudFeatures.WIDTH, HIDDEN)
                .floatInitializer("b1", b1, HIDDEN)
                .floatInitializer("w2", w2, HIDDEN, 2)
                .floatInitializer("b2", b2, 2)
                .node("Gemm", new String[] {"features", "w1", "b1"}, new String[] {"hidden"})
                .node("Relu", new String[] {"hidden"}, new String[] {"hidden_relu"})
                .node("Gemm", new String[] {"hidden_relu", "w2", "b2"}, new String[] {"logits"})
                .node("Softmax", new String[] {"logits"}, new String[] {"probabilities"}, "axis", 1L)
                .writeTo(file);
    }

    /** Writes {@code dir/test_data_set_0} with 16 held-out transactions and this trainer's predictions. */
    void writeGoldenVectors(Path dir) throws IOException {
        SplittableRandom random = new SplittableRandom(99);
        int n = 16;
        float[] in = new float[n * FraudFeatures.WIDTH];
        float[] out = new float[n * 2];
        for (int i = 0; i < n; i++) {
            float[] f = FraudFeatures.draw(random);
            System.arraycopy(f, 0, in, i * FraudFeatures.WIDTH, FraudFeatures.WIDTH);
            System.arraycopy(predict(f), 0, out, i * 2, 2);
        }
        Path set = Files.createDirectories(dir.resolve("test_data_set_0"));
        Files.write(
                set.resolve("input_0.pb"),
                tensor("features", in, n, FraudFeatures.WIDTH).toByteArray());
        Files.write(
                set.resolve("output_0.pb"), tensor("probabilities", out, n, 2).toByteArray());
    }

    private static TensorProto tensor(String name, float[] values, long... dims) {
        ByteBuffer buf = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buf.putFloat(v);
        }
        TensorProto.Builder t = TensorProto.newBuilder()
                .setName(name)
                .setDataType(ElementType.FLOAT.onnxCode())
                .setRawData(ByteString.copyFrom(buf.array()));
        for (long d : dims) {
            t.addDims(d);
        }
        return t.build();
    }

    /** ROC AUC of P(fraud) on a fresh sample, and the sample's fraud rate. */
    double[] evaluate(int samples) {
        SplittableRandom random = new SplittableRandom(7);
        double[][] scored = new double[samples][];
        int frauds = 0;
        for (int i = 0; i < samples; i++) {
            float[] f = FraudFeatures.draw(random);
            int label = random.nextDouble() < 1 / (1 + Math.exp(-FraudFeatures.fraudLogit(f))) ? 1 : 0;
            scored[i] = new double[] {predict(f)[1], label};
            frauds += label;
        }
        Arrays.sort(scored, Comparator.comparingDouble(r -> r[0]));
        double rankSum = 0;
        for (int i = 0; i < samples; i++) {
            if (scored[i][1] == 1) {
                rankSum += i + 1;
            }
        }
        long legit = samples - frauds;
        double auc = (rankSum - frauds * (frauds + 1) / 2.0) / ((double) frauds * legit);
        return new double[] {auc, (double) frauds / samples};
    }
}
