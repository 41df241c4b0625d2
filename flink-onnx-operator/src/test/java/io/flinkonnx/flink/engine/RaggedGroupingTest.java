package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.HardeningModels;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Records that differ along an axis no attention mask covers are never padded into one run: a record's
 * prediction must not depend on which records share its batch.
 */
class RaggedGroupingTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;

    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<float[], float[]> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
    }

    private OnnxInferenceSpec<float[], float[]> spec(Path model, String output) {
        return OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats(output), FLOATS)
                .build();
    }

    private static float[] ramp(int length, float start) {
        float[] x = new float[length];
        for (int i = 0; i < length; i++) {
            x[i] = start + 0.25f * i;
        }
        return x;
    }

    private static float mean(float[] x) {
        double s = 0;
        for (float v : x) {
            s += v;
        }
        return (float) (s / x.length);
    }

    private List<float[]> scoreInOneBatch(
            OnnxInferenceSpec<float[], float[]> spec, BatchPolicy policy, List<float[]> records) throws Exception {
        harness = Harnesses.open(spec, policy, FLOATS);
        long t = 0;
        for (float[] r : records) {
            harness.processElement(r, t++);
        }
        harness.endInput();
        assertThat(Harnesses.failed(harness, FLOATS)).isEmpty();
        return new ArrayList<>(harness.extractOutputValues());
    }

    @Test
    void aShortSequenceBesideALongOneScoresAsItDoesAloneOnAModelWithoutMask() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec(HardeningModels.writeMeanPool(dir.resolve("mean.onnx")), "y");
        float[] shortOne = ramp(5, 1f);
        float[] longOne = ramp(40, -3f);
        List<float[]> out =
                scoreInOneBatch(spec, BatchPolicy.builder().maxBatchSize(8).build(), List.of(shortOne, longOne));
        assertThat(out.get(0)[0]).isCloseTo(mean(shortOne), within(1e-5f));
        assertThat(out.get(1)[0]).isCloseTo(mean(longOne), within(1e-5f));
    }

    @Test
    void anRnnScoresEachSequenceAsItDoesAlone() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec(HardeningModels.writeRnn(dir.resolve("rnn.onnx")), "h");
        List<float[]> records = List.of(ramp(2 * 5, 0.1f), ramp(2 * 40, -0.5f), ramp(2 * 5, 0.3f), ramp(2 * 17, 0f));
        List<float[]> alone = new ArrayList<>();
        try (InferenceRunner<float[], float[]> runner = Runners.open(spec)) {
            for (float[] r : records) {
                alone.add(runner.infer(r));
            }
        }
        List<float[]> batched =
                scoreInOneBatch(spec, BatchPolicy.builder().maxBatchSize(8).build(), records);
        assertThat(batched).hasSize(records.size());
        for (int i = 0; i < records.size(); i++) {
            assertThat(batched.get(i)).as("record %s", i).containsExactly(alone.get(i), within(1e-6f));
        }
    }

    @Test
    void groupsOfEqualShapeKeepTheInputOrderAndEachResultIsDecodedWithItsOwnRecord() throws Exception {
        // the decoder returns the record's first value beside the prediction: both must be the record's own
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        HardeningModels.writeMeanPool(dir.resolve("mean.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> new float[] {out.floats("y")[0], x[0]}, FLOATS)
                .build();
        List<float[]> records = new ArrayList<>();
        int[] lengths = {3, 7, 3, 7, 5, 3, 9};
        for (int i = 0; i < lengths.length; i++) {
            records.add(ramp(lengths[i], i * 10f));
        }
        List<float[]> out =
                scoreInOneBatch(spec, BatchPolicy.builder().maxBatchSize(16).build(), records);
        assertThat(out).hasSize(records.size());
        for (int i = 0; i < records.size(); i++) {
            assertThat(out.get(i)[0]).as("record %s", i).isCloseTo(mean(records.get(i)), within(1e-4f));
            assertThat(out.get(i)[1]).as("record %s handed to the decoder", i).isEqualTo(records.get(i)[0]);
        }
    }

    @Test
    void padWithoutMaskPadsIntoOneRunAsDocumented() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec(HardeningModels.writeMeanPool(dir.resolve("mean.onnx")), "y");
        float[] shortOne = ramp(24, 1f);
        List<float[]> out = scoreInOneBatch(
                spec,
                BatchPolicy.builder().maxBatchSize(8).padWithoutMask(true).build(),
                List.of(shortOne, ramp(30, -3f)));
        // lengths 24 and 30 share a length bucket (24..32), so one run: the short record's mean is taken over
        // the 30 padded positions, the risk the option's Javadoc names
        assertThat(out.get(0)[0]).isCloseTo(mean(shortOne) * 24 / 30, within(1e-5f));
    }

    @Test
    void recordsThatMayNotShareARunStillFlushOnceAtTheTimer() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec(HardeningModels.writeMeanPool(dir.resolve("mean.onnx")), "y");
        harness = Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(8)
                        .maxBatchDelay(Duration.ofMillis(5))
                        .build(),
                FLOATS);
        harness.processElement(ramp(2, 0f), 1);
        harness.processElement(ramp(3, 0f), 2);
        assertThat(harness.extractOutputValues()).isEmpty();
        harness.setProcessingTime(5);
        assertThat(harness.extractOutputValues()).extracting(y -> y[0]).containsExactly(0.125f, 0.25f);
    }
}
