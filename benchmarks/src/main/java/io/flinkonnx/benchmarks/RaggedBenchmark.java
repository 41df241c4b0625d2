package io.flinkonnx.benchmarks;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.SplittableRandom;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * Ragged token sequences (lengths uniform in 8..256) through a BERT-like encoder in the batching operator:
 * records padded in length buckets ({@code BatchPolicy.bucketByLength(true)}, the default) against padded to
 * the batch's longest ({@code false}), same max batch, same records, one slot. Prints one {@code RAGGED
 * {json}} line; {@code InferenceBenchmark} reports the ratio as {@code ragged_bucketed_over_padded}.
 *
 * <pre>
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install && ./mvnw -q -B -pl benchmarks exec:exec -Dexec.mainClass=io.flinkonnx.benchmarks.RaggedBenchmark
 * </pre>
 */
public final class RaggedBenchmark {
    static final int VOCAB = 1000;
    static final int HIDDEN = 128;
    static final int FFN = 512;
    static final int LAYERS = 2;
    static final int MIN_LENGTH = 8;
    static final int MAX_LENGTH = 256;

    private RaggedBenchmark() {}

    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory("flink-onnx-ragged-");
        Path model = writeBertLike(dir.resolve("bert-like.onnx"));
        double[] rates = measure(model, 2_000, Integer.getInteger("ragged.batch", 64));
        System.out.printf(
                Locale.ROOT,
                "RAGGED {\"bucketed_rec_per_s\": %.1f, \"padded_rec_per_s\": %.1f, \"ragged_bucketed_over_padded\": %.3f}%n",
                rates[0],
                rates[1],
                rates[0] / rates[1]);
    }

    /**
     * {rate with length buckets, rate padded to the longest} in records/s, each the best of two runs,
     * alternating (the first run also warms the JIT).
     */
    static double[] measure(Path model, int records, int batch) throws Exception {
        double bucketed = 0;
        double padded = 0;
        for (int round = 0; round < 2; round++) {
            bucketed = Math.max(bucketed, run(model, records, batch, true));
            padded = Math.max(padded, run(model, records, batch, false));
        }
        System.out.printf(
                Locale.ROOT,
                "  ragged lengths %d..%d, BERT-like encoder (%d layers, hidden %d), batch %d: length buckets %,.1f"
                        + " rec/s, padded to the longest %,.1f rec/s (ratio %.2f)%n",
                MIN_LENGTH,
                MAX_LENGTH,
                LAYERS,
                HIDDEN,
                batch,
                bucketed,
                padded,
                bucketed / padded);
        return new double[] {bucketed, padded};
    }

    private static double run(Path model, int records, int batch, boolean buckets) throws Exception {
        Configuration conf = new Configuration();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, conf);
        OnnxInferenceSpec<long[], Float> spec = OnnxInference.<long[]>builder(model.toString())
                .encoder((ids, row) -> row.put("input_ids", ids)) // the attention mask is derived
                .decoder((ids, out) -> out.floats("pooled")[0], Types.FLOAT)
                .build();
        OnnxInference.batched(
                        env.fromSequence(0, records - 1).map(new Tokens()),
                        spec,
                        BatchPolicy.builder()
                                .maxBatchSize(batch)
                                .maxBatchDelay(Duration.ofMillis(50))
                                .bucketByLength(buckets)
                                .build())
                .sinkTo(new DiscardingSink<>());
        long start = System.nanoTime();
        env.execute("ragged, buckets " + buckets);
        return records / ((System.nanoTime() - start) / 1e9);
    }

    /** Record {@code id}: token ids of a length uniform in 8..256, the same for the same id in every run. */
    static final class Tokens implements MapFunction<Long, long[]> {
        @Override
        public long[] map(Long id) {
            SplittableRandom random = new SplittableRandom(id * 0x9E3779B97F4A7C15L);
            long[] ids = new long[random.nextInt(MIN_LENGTH, MAX_LENGTH + 1)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = random.nextInt(VOCAB);
            }
            return ids;
        }
    }

    /**
     * A small BERT-like encoder: token embedding, {@value #LAYERS} post-norm transformer layers (one attention
     * head over {@value #HIDDEN} dims with the attention mask added to the scores, a {@value #FFN}-wide ReLU
     * feed-forward), and the first token's vector as {@code pooled: FLOAT[batch, 128]}. Inputs
     * {@code input_ids} and {@code attention_mask}, both {@code INT64[batch, seq]}: padding under the mask leaves
     * every output unchanged, so records of different lengths may share a run.
     */
    static Path writeBertLike(Path file) throws IOException {
        OnnxGraph g = new OnnxGraph("bert_like")
                .input("input_ids", ElementType.INT64, "batch", "seq")
                .input("attention_mask", ElementType.INT64, "batch", "seq")
                .output("pooled", ElementType.FLOAT, "batch", HIDDEN)
                .floatInitializer("embedding", scaled(TestModels.weights(VOCAB * HIDDEN, 101), 0.2f), VOCAB, HIDDEN)
                .floatInitializer("scale", new float[] {(float) (1 / Math.sqrt(HIDDEN))})
                .floatInitializer("one", new float[] {1f})
                .floatInitializer("masked", new float[] {-10_000f})
                .longInitializer("axis1", new long[] {1}, 1)
                .longInitializer("first", new long[] {0})
                .node("Gather", names("embedding", "input_ids"), names("h0"))
                .node("Cast", names("attention_mask"), names("mask_f"), "to", (long) ElementType.FLOAT.onnxCode())
                .node("Unsqueeze", names("mask_f", "axis1"), names("mask_3d"))
                .node("Sub", names("one", "mask_3d"), names("pad_3d"))
                .node("Mul", names("pad_3d", "masked"), names("mask_bias"));
        String h = "h0";
        int seed = 200;
        for (int layer = 0; layer < LAYERS; layer++) {
            String p = "l" + layer + "_";
            float w = (float) (1 / Math.sqrt(HIDDEN));
            g.floatInitializer(p + "wq", scaled(TestModels.weights(HIDDEN * HIDDEN, seed++), w), HIDDEN, HIDDEN)
                    .floatInitializer(p + "wk", scaled(TestModels.weights(HIDDEN * HIDDEN, seed++), w), HIDDEN, HIDDEN)
                    .floatInitializer(p + "wv", scaled(TestModels.weights(HIDDEN * HIDDEN, seed++), w), HIDDEN, HIDDEN)
                    .floatInitializer(p + "wo", scaled(TestModels.weights(HIDDEN * HIDDEN, seed++), w), HIDDEN, HIDDEN)
                    .floatInitializer(p + "w1", scaled(TestModels.weights(HIDDEN * FFN, seed++), w), HIDDEN, FFN)
                    .floatInitializer(p + "b1", TestModels.weights(FFN, seed++), FFN)
                    .floatInitializer(
                            p + "w2",
                            scaled(TestModels.weights(FFN * HIDDEN, seed++), (float) (1 / Math.sqrt(FFN))),
                            FFN,
                            HIDDEN)
                    .floatInitializer(p + "b2", TestModels.weights(HIDDEN, seed++), HIDDEN)
                    .floatInitializer(p + "g1", ones(HIDDEN), HIDDEN)
                    .floatInitializer(p + "be1", new float[HIDDEN], HIDDEN)
                    .floatInitializer(p + "g2", ones(HIDDEN), HIDDEN)
                    .floatInitializer(p + "be2", new float[HIDDEN], HIDDEN)
                    .node("MatMul", names(h, p + "wq"), names(p + "q"))
                    .node("MatMul", names(h, p + "wk"), names(p + "k"))
                    .node("MatMul", names(h, p + "wv"), names(p + "v"))
                    .node("Transpose", names(p + "k"), names(p + "kt"), "perm", new long[] {0, 2, 1})
                    .node("MatMul", names(p + "q", p + "kt"), names(p + "scores"))
                    .node("Mul", names(p + "scores", "scale"), names(p + "scaled"))
                    .node("Add", names(p + "scaled", "mask_bias"), names(p + "biased"))
                    .node("Softmax", names(p + "biased"), names(p + "attn"), "axis", -1L)
                    .node("MatMul", names(p + "attn", p + "v"), names(p + "ctx"))
                    .node("MatMul", names(p + "ctx", p + "wo"), names(p + "o"))
                    .node("Add", names(h, p + "o"), names(p + "r1"))
                    .node("LayerNormalization", names(p + "r1", p + "g1", p + "be1"), names(p + "n1"), "axis", -1L)
                    .node("MatMul", names(p + "n1", p + "w1"), names(p + "f1"))
                    .node("Add", names(p + "f1", p + "b1"), names(p + "f1b"))
                    .node("Relu", names(p + "f1b"), names(p + "f1r"))
                    .node("MatMul", names(p + "f1r", p + "w2"), names(p + "f2"))
                    .node("Add", names(p + "f2", p + "b2"), names(p + "f2b"))
                    .node("Add", names(p + "n1", p + "f2b"), names(p + "r2"))
                    .node("LayerNormalization", names(p + "r2", p + "g2", p + "be2"), names(p + "n2"), "axis", -1L);
            h = p + "n2";
        }
        return g.node("Gather", names(h, "first"), names("pooled"), "axis", 1L).writeTo(file);
    }

    private static String[] names(String... names) {
        return names;
    }

    private static float[] scaled(float[] values, float factor) {
        for (int i = 0; i < values.length; i++) {
            values[i] *= factor;
        }
        return values;
    }

    private static float[] ones(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, 1f);
        return v;
    }
}
