package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Records of every supported kind through real ORT sessions, checked against independent references. */
class TypedConversionTest {
    @TempDir
    Path dir;

    @Test
    void twoNamedInputsGiveTwoNamedOutputs() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        OnnxInferenceSpec<float[][], Tuple2<float[], float[]>> spec = OnnxInference.<float[][]>builder(model.toString())
                .encoder((pair, row) -> row.put("a", pair[0]).put("b", pair[1]))
                .decoder(
                        (pair, out) -> Tuple2.of(out.floats("sum"), out.floats("prod")),
                        Types.TUPLE(
                                Types.PRIMITIVE_ARRAY(Types.FLOAT),
                                PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO))
                .build();
        try (InferenceRunner<float[][], Tuple2<float[], float[]>> runner = Runners.open(spec)) {
            Tuple2<float[], float[]> r = runner.infer(new float[][] {{1, 2, 3, 4}, {0.5f, -1, 2, 10}});
            assertThat(r.f0).containsExactly(1.5f, 1, 5, 14);
            assertThat(r.f1).containsExactly(0.5f, -2, 6, 40);
        }
    }

    @Test
    void int64InputsAndOutputsStayInt64() throws Exception {
        Path model = TestModels.writeInt64Affine(dir.resolve("int64.onnx"));
        OnnxInferenceSpec<long[], long[]> spec = OnnxInference.<long[]>builder(model.toString())
                .encoder((ids, row) -> row.put("ids", ids))
                .decoder((ids, out) -> out.longs("out"), PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<long[], long[]> runner = Runners.open(spec)) {
            long big = 3_000_000_000_000L; // beyond float precision: proves no float round trip
            assertThat(runner.infer(new long[] {1, -2, big})).containsExactly(10, 1, big * 3 + 7);
        }
    }

    @Test
    void stringInputsAreEncodedByAnOnnxMlLabelEncoder() throws Exception {
        Path model = TestModels.writeStringLabelEncoder(dir.resolve("labels.onnx"));
        OnnxInferenceSpec<String, Long> spec = OnnxInference.<String>builder(model.toString())
                .encoder((category, row) -> row.put("category", new String[] {category}))
                .decoder((category, out) -> out.longs("code")[0], Types.LONG)
                .build();
        try (InferenceRunner<String, Long> runner = Runners.open(spec)) {
            for (int i = 0; i < TestModels.LABELS.length; i++) {
                assertThat(runner.infer(TestModels.LABELS[i])).isEqualTo(i);
            }
            assertThat(runner.infer("barter")).isEqualTo(-1L);
        }
    }

    @Test
    void flatRecordIsReshapedToTheFixedPerRecordShape() throws Exception {
        Path model = TestModels.writeChannelMean(dir.resolve("image.onnx"));
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(model.toString()).spec())) {
            float[] image = TestModels.features(3, 48);
            assertThat(runner.infer(image)).containsExactly(TestModels.channelMeanReference(image), within(1e-6f));
            assertThat(runner.signature().inputs().get(0).shapeString()).isEqualTo("[batch,3,4,4]");
        }
    }

    @Test
    void outputShapesAreGivenPerRecordWithoutTheBatchAxis() throws Exception {
        Path model = TestModels.writeChannelMean(dir.resolve("image.onnx"));
        OnnxInferenceSpec<float[], String> spec = OnnxInference.<float[]>builder(model.toString())
                .encoder((img, row) -> row.put("image", img, 3, 4, 4))
                .decoder((img, out) -> Arrays.toString(out.shape("mean")), Types.STRING)
                .build();
        try (InferenceRunner<float[], String> runner = Runners.open(spec)) {
            assertThat(runner.infer(new float[48])).isEqualTo("[3]");
        }
    }

    @Test
    void mlpMatchesTheIndependentReference() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(32, 64, 5);
        Path model = mlp.writeTo(dir.resolve("mlp.onnx"));
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(model.toString()).spec())) {
            for (int k = 0; k < 50; k++) {
                float[] x = TestModels.features(k, 32);
                assertThat(runner.infer(x)).containsExactly(mlp.reference(x), within(1e-5f));
            }
        }
    }
}
