package io.flinkonnx.flink.drift;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.ModelChecks;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** ONNX golden vectors through {@link ModelChecks#verify}: real models, real ORT sessions, real .pb files. */
class GoldenVectorsTest {
    @TempDir
    Path dir;

    @Test
    void uint8GoldenVectorOf255AgainstExpected0FailsVerification() throws Exception {
        Path model = new OnnxGraph("uint8_identity")
                .input("x", ElementType.UINT8, 3)
                .output("y", ElementType.UINT8, 3)
                .node("Identity", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve("u8.onnx"));
        Path set = Files.createDirectories(dir.resolve("u8/test_data_set_0"));
        Files.write(
                set.resolve("input_0.pb"),
                bytes("x", ElementType.UINT8, new byte[] {(byte) 255, 7, 9}).toByteArray());
        Files.write(
                set.resolve("output_0.pb"),
                bytes("y", ElementType.UINT8, new byte[] {0, 7, 9}).toByteArray());

        List<ModelChecks.SetResult> results =
                ModelChecks.verify(ModelSource.of(model.toString()), dir.resolve("u8"), DriftTolerance.defaults());

        assertThat(results).hasSize(1);
        ModelChecks.SetResult r = results.get(0);
        assertThat(r.error).isNull();
        assertThat(r.passed()).as("255 against an expected 0 on a UINT8 output").isFalse();
        OutputDrift y = r.report.outputs.get(0);
        assertThat(y.maxAbsError).isEqualTo(255);
        assertThat(y.withinTolerance).isFalse();
    }

    /** A complete set for the two-input, two-output model: sum = a + b, prod = a * b. */
    private Path multiOutputSet(String name) throws Exception {
        float[] a = TestModels.features(1, 4);
        float[] b = TestModels.features(2, 4);
        float[] sum = new float[4];
        float[] prod = new float[4];
        for (int i = 0; i < 4; i++) {
            sum[i] = a[i] + b[i];
            prod[i] = a[i] * b[i];
        }
        Path set = Files.createDirectories(dir.resolve(name + "/test_data_set_0"));
        Files.write(set.resolve("input_0.pb"), floats("a", a).toByteArray());
        Files.write(set.resolve("input_1.pb"), floats("b", b).toByteArray());
        Files.write(set.resolve("output_0.pb"), floats("sum", sum).toByteArray());
        Files.write(set.resolve("output_1.pb"), floats("prod", prod).toByteArray());
        return set;
    }

    private List<ModelChecks.SetResult> verify(Path model, String sets) throws Exception {
        return ModelChecks.verify(ModelSource.of(model.toString()), dir.resolve(sets), DriftTolerance.defaults());
    }

    @Test
    void verifyPassesACompleteSetOfATwoOutputModel() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        multiOutputSet("complete");
        ModelChecks.SetResult r = verify(model, "complete").get(0);
        assertThat(r.passed()).as("%s %s", r.error, r.report).isTrue();
        assertThat(r.report.outputs).extracting(o -> o.output).containsExactly("sum", "prod");
    }

    @Test
    void verifyFailsNamingOutput0WhenItsFileIsRemovedInsteadOfShiftingOutput1OntoIt() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        Files.delete(multiOutputSet("gap").resolve("output_0.pb"));
        ModelChecks.SetResult r = verify(model, "gap").get(0);
        assertThat(r.passed()).isFalse();
        assertThat(r.error)
                .as("error of %s", r.report)
                .isNotNull()
                .contains("has output_1.pb but no output_0.pb (output 'sum')");
    }

    @Test
    void verifyFailsNamingTheLastOutputWhenItsFileIsMissing() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        Files.delete(multiOutputSet("short").resolve("output_1.pb"));
        ModelChecks.SetResult r = verify(model, "short").get(0);
        assertThat(r.passed())
                .as("a set that compares only 'sum' of a model with outputs sum and prod")
                .isFalse();
        assertThat(r.error).isNotNull().contains("missing expected output output_1.pb (output 'prod')");
    }

    @Test
    void verifyFailsASetWithZeroExpectedOutputs() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        Path set = multiOutputSet("none");
        Files.delete(set.resolve("output_0.pb"));
        Files.delete(set.resolve("output_1.pb"));
        ModelChecks.SetResult r = verify(model, "none").get(0);
        assertThat(r.passed()).as("a set that compares nothing").isFalse();
        assertThat(r.error)
                .isNotNull()
                .contains("missing expected output output_0.pb (output 'sum'), output_1.pb (output 'prod')")
                .contains("the set has 0");
    }

    private static OnnxInferenceSpec<float[], float[]> goldenSpec(Path model, Path golden) {
        return OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> new float[0], PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .driftAgainstGoldenVectors(golden.toString(), Duration.ofMinutes(10))
                .build();
    }

    /** The drift report of a golden check on a runner opened outside Flink; the runner is closed. */
    private static DriftReport goldenDrift(Path model, Path golden) throws Exception {
        try (InferenceRunner<float[], float[]> runner = Runners.open(goldenSpec(model, golden))) {
            return runner.drift().checkGolden(0);
        }
    }

    @Test
    void goldenDriftCheckPassesOnlyWithEveryExpectedOutput() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(4, 8, 2);
        Path model = mlp.writeTo(dir.resolve("mlp.onnx"));
        float[] x = TestModels.features(1, 4);
        Path set = Files.createDirectories(dir.resolve("mlp-golden/test_data_set_0"));
        Files.write(set.resolve("input_0.pb"), floats("x", x).toByteArray());
        Files.write(set.resolve("output_0.pb"), floats("y", mlp.reference(x)).toByteArray());
        DriftReport ok = goldenDrift(model, dir.resolve("mlp-golden"));
        assertThat(ok.flagged).isFalse();
        assertThat(ok.outputs).extracting(o -> o.output).containsExactly("y");
    }

    @Test
    void goldenDriftCheckFailsWhenTheOnlyExpectedOutputFileIsMissing() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(4, 8, 2);
        Path model = mlp.writeTo(dir.resolve("mlp.onnx"));
        Path set = Files.createDirectories(dir.resolve("no-output/test_data_set_0"));
        Files.write(
                set.resolve("input_0.pb"),
                floats("x", TestModels.features(1, 4)).toByteArray());
        long referencesBefore = SessionStats.references();

        assertThatThrownBy(() -> goldenDrift(model, dir.resolve("no-output")))
                .as("a golden set with zero expected outputs")
                .hasMessageContaining("test_data_set_0 is missing expected output output_0.pb (output 'y')")
                .hasMessageContaining("the set has 0");
        assertThat(SessionStats.references())
                .as("session references after the failed open")
                .isEqualTo(referencesBefore);
    }

    @Test
    void goldenDriftCheckFailsWhenOneOfTwoExpectedOutputFilesIsMissing() throws Exception {
        Path model = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx"));
        Path set = multiOutputSet("drift-short");
        Files.delete(set.resolve("output_1.pb"));
        assertThatThrownBy(() -> goldenDrift(model, dir.resolve("drift-short")))
                .hasMessageContaining("missing expected output output_1.pb (output 'prod')");
    }

    private static TensorProto floats(String name, float[] values) {
        return TestModels.floatTensor(name, values);
    }

    static TensorProto bytes(String name, ElementType type, byte... values) {
        return TensorProto.newBuilder()
                .setName(name)
                .setDataType(type.onnxCode())
                .addDims(values.length)
                .setRawData(ByteString.copyFrom(values))
                .build();
    }
}
