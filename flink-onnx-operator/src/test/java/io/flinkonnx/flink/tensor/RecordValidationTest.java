package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.assertj.core.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A record that does not fit is refused with a message naming the input, the expected and the actual. */
class RecordValidationTest {
    @TempDir
    Path dir;

    private InferenceRunner<float[], float[]> mlpRunner() throws Exception {
        Path model = new TestModels.Mlp(8, 4, 2).writeTo(dir.resolve("mlp.onnx"));
        return Runners.open(new OnnxInference(model.toString()).spec());
    }

    @Test
    void wrongLengthNamesInputExpectedAndActual() throws Exception {
        try (InferenceRunner<float[], float[]> runner = mlpRunner()) {
            assertThatThrownBy(() -> runner.infer(new float[7]))
                    .isInstanceOf(RecordConversionException.class)
                    .hasMessage("Input 'x' expects 8 values per record (record shape [8], model shape [batch,8]) but"
                            + " the record has 7");
        }
    }

    @Test
    void nullRecordValuesAreRefused() throws Exception {
        try (InferenceRunner<float[], float[]> runner = mlpRunner()) {
            assertThatThrownBy(() -> runner.infer(null))
                    .isInstanceOf(RecordConversionException.class)
                    .hasMessage("Input 'x' is null; it expects FLOAT values (float[])");
        }
    }

    @Test
    void wrongElementTypeIsNeverCast() throws Exception {
        Path model = TestModels.writeInt64Affine(dir.resolve("int64.onnx"));
        OnnxInferenceSpec<float[], long[]> spec = OnnxInference.<float[]>builder(model.toString())
                .encoder((v, row) -> row.put("ids", v))
                .decoder((v, out) -> out.longs("out"), PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<float[], long[]> runner = Runners.open(spec)) {
            assertThatThrownBy(() -> runner.infer(new float[] {1, 2, 3}))
                    .isInstanceOf(RecordConversionException.class)
                    .hasMessage("Input 'ids' expects INT64 values (long[]) but the record gave float[]; values are"
                            + " never cast");
        }
    }

    @Test
    void explicitShapeMustMatchTheModel() throws Exception {
        Path model = TestModels.writeChannelMean(dir.resolve("image.onnx"));
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(model.toString())
                .encoder((img, row) -> row.put("image", img, 3, 2, 8))
                .decoder((img, out) -> out.floats("mean"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<float[], float[]> runner = Runners.open(spec)) {
            assertThatThrownBy(() -> runner.infer(new float[48]))
                    .isInstanceOf(RecordConversionException.class)
                    .hasMessage("Input 'image' expects record shape [3,4,4] (model shape [batch,3,4,4]) but the record"
                            + " gave [3, 2, 8]");
        }
    }

    @Test
    void missingAndUnknownInputsAreNamed() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        OnnxInferenceSpec<float[], float[]> onlyA = OnnxInference.<float[]>builder(model.toString())
                .encoder((v, row) -> row.put("a", v))
                .decoder((v, out) -> out.floats("sum"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<float[], float[]> runner = Runners.open(onlyA)) {
            assertThatThrownBy(() -> runner.infer(new float[4]))
                    .isInstanceOf(RecordConversionException.class)
                    .hasMessageContaining("The record gave no value for input 'b'")
                    .hasMessageContaining("inputs: a:FLOAT[batch,4], b:FLOAT[batch,4]");
        }
        OnnxInferenceSpec<float[], float[]> typo = OnnxInference.<float[]>builder(model.toString())
                .encoder((v, row) -> row.put("c", v))
                .decoder((v, out) -> out.floats("sum"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<float[], float[]> runner = Runners.open(typo)) {
            assertThatThrownBy(() -> runner.infer(new float[4]))
                    .hasMessageContaining("has no input 'c'; its inputs are a:FLOAT[batch,4], b:FLOAT[batch,4]");
        }
    }

    @Test
    void readingAnOutputWithTheWrongAccessorNamesTheRightOne() throws Exception {
        Path model = TestModels.writeInt64Affine(dir.resolve("int64.onnx"));
        OnnxInferenceSpec<long[], float[]> spec = OnnxInference.<long[]>builder(model.toString())
                .encoder((v, row) -> row.put("ids", v))
                .decoder((v, out) -> out.floats("out"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<long[], float[]> runner = Runners.open(spec)) {
            assertThatThrownBy(() -> runner.infer(new long[] {1, 2, 3}))
                    .isInstanceOf(RecordConversionException.class)
                    .hasMessageContaining("Output 'out'")
                    .hasMessageContaining("is INT64 (long[]): read it with longs(\"out\"), not floats()");
        }
    }

    @Test
    void simpleFunctionRefusesModelsItCannotServeAtOpen() {
        Path model = dir.resolve("multi.onnx");
        assertThatThrownBy(() -> {
                    TestModels.writeMultiInputMultiOutput(model);
                    Runners.open(new OnnxInference(model.toString()).spec()).close();
                })
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("new OnnxInference(\"" + model
                        + "\") needs a model with one FLOAT input and one" + " FLOAT output")
                .hasMessageContaining("Use OnnxInference.builder");
        // and the failed open released the session it had acquired
        Assertions.assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }
}
