package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Token sequences of different lengths share a batch: padded, masked, and cut back per record. */
class RaggedBatchTest {
    private static final TypeInformation<long[]> TOKENS = PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO;

    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<?, ?> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
    }

    @Test
    void raggedSequencesArePaddedMaskedAndCutBack() throws Exception {
        OnnxInferenceSpec<long[], String> spec = OnnxInference.<long[]>builder(
                        TestModels.writeTokenModel(dir.resolve("tokens.onnx")).toString())
                .encoder((ids, row) -> row.put("input_ids", ids)) // attention_mask is left to the operator
                .decoder(
                        (ids, out) -> Arrays.toString(out.longs("masked")) + " len=" + out.longs("length")[0]
                                + " shape=" + Arrays.toString(out.shape("masked")),
                        Types.STRING)
                .build();
        OneInputStreamOperatorTestHarness<long[], String> h = Harnesses.open(
                spec, BatchPolicy.builder().maxBatchSize(3).padValue(-7).build(), TOKENS);
        harness = h;
        h.processElement(new long[] {5, 6}, 1);
        h.processElement(new long[] {1, 2, 3, 4}, 2);
        h.processElement(new long[] {9}, 3);

        // One run of shape [3,4]: the mask's zeros over the padding keep the pad value (-7) out of both outputs.
        assertThat(h.extractOutputValues())
                .containsExactly("[5, 6] len=2 shape=[2]", "[1, 2, 3, 4] len=4 shape=[4]", "[9] len=1 shape=[1]");
    }

    @Test
    void recordsOfVeryDifferentLengthsRunInLengthBucketsWithTheSameResults() throws Exception {
        String model = TestModels.writeTokenModel(dir.resolve("tokens.onnx")).toString();
        long[] shortIds = {5, 6, 7};
        long[] longIds = new long[100];
        Arrays.fill(longIds, 3);
        List<String> bucketed = scoreBoth(model, true, shortIds, longIds);
        long bucketedRuns = runs();
        List<String> padded = scoreBoth(model, false, shortIds, longIds);
        long paddedRuns = runs();

        assertThat(bucketed).isEqualTo(padded);
        assertThat(bucketed.get(0)).isEqualTo("[5, 6, 7] len=3 shape=[3]");
        assertThat(bucketedRuns).as("lengths 3 and 100: two buckets, two runs").isEqualTo(2);
        assertThat(paddedRuns).as("without buckets: one run padded to 100").isEqualTo(1);
    }

    private List<String> scoreBoth(String model, boolean buckets, long[]... records) throws Exception {
        if (harness != null) {
            harness.close();
        }
        OnnxInferenceSpec<long[], String> spec = OnnxInference.<long[]>builder(model)
                .encoder((ids, row) -> row.put("input_ids", ids))
                .decoder(
                        (ids, out) -> Arrays.toString(out.longs("masked")) + " len=" + out.longs("length")[0]
                                + " shape=" + Arrays.toString(out.shape("masked")),
                        Types.STRING)
                .build();
        OneInputStreamOperatorTestHarness<long[], String> h = Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(records.length)
                        .bucketByLength(buckets)
                        .build(),
                TOKENS);
        harness = h;
        for (long[] r : records) {
            h.processElement(r, 1);
        }
        return h.extractOutputValues();
    }

    private long runs() {
        return Harnesses.operator(harness).runner().runsStarted();
    }

    @Test
    void modelWithBatchFixedAtOneIsScoredOneRecordPerRun() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        TestModels.writeFixedBatchOfOne(dir.resolve("one.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        OneInputStreamOperatorTestHarness<float[], float[]> h = Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(32)
                        .maxBatchDelay(Duration.ofSeconds(1))
                        .build(),
                PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
        harness = h;
        h.processElement(new float[] {-1, 2, -3, 4}, 1);
        h.processElement(new float[] {5, -6, 7, -8}, 2);
        List<float[]> out = h.extractOutputValues();
        assertThat(out).hasSize(2); // no waiting for a batch that cannot form
        assertThat(out.get(0)).containsExactly(0, 2, 0, 4);
        assertThat(out.get(1)).containsExactly(5, 0, 7, 0);
    }
}
