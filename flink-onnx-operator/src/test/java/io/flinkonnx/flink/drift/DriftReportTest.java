package io.flinkonnx.flink.drift;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceFunction;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.TensorData;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.operators.StreamMap;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Drift against a perturbed twin, ONNX golden vectors, and references carried by records. */
class DriftReportTest {
    private static final Path BACKEND = Path.of("src/test/resources/onnx-backend");

    @TempDir
    Path dir;

    private static OneInputStreamOperatorTestHarness<float[], float[]> harness(
            OnnxInferenceSpec<float[], float[]> spec, int batch) throws Exception {
        return Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(batch)
                        .maxBatchDelay(Duration.ofSeconds(1))
                        .build(),
                PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    }

    private static List<DriftReport> driftReports(OneInputStreamOperatorTestHarness<?, ?> h) {
        var queue = h.getSideOutput(DriftReport.TAG);
        return queue == null
                ? List.of()
                : queue.stream().map(StreamRecord::getValue).collect(Collectors.toList());
    }

    private OnnxInferenceSpec.Builder<float[], float[]> mlpSpec(String served) {
        return OnnxInference.<float[]>builder(served)
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> out.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    }

    @Test
    void perturbedTwinInShadowGivesTheKnownErrorsAndIsFlagged() throws Exception {
        TestModels.Mlp served = new TestModels.Mlp(8, 16, 3);
        TestModels.Mlp twin = new TestModels.Mlp(8, 16, 3);
        for (int k = 0; k < 3; k++) {
            twin.b2[k] += 0.01f; // every output moves by exactly 0.01; the argmax does not
        }
        String model = served.writeTo(dir.resolve("served.onnx")).toString();
        String reference = twin.writeTo(dir.resolve("twin.onnx")).toString();
        var h = harness(mlpSpec(model).driftAgainstModel(reference, 1.0).build(), 4);
        try {
            for (int k = 0; k < 8; k++) {
                h.processElement(TestModels.features(k, 8), k);
            }
            List<DriftReport> reports = driftReports(h);
            assertThat(reports).hasSize(2); // one per batch of 4 at a sample fraction of 1
            DriftReport r = reports.get(0);
            assertThat(r.source).isEqualTo(DriftReport.Source.SHADOW_MODEL);
            assertThat(r.reference).isEqualTo(reference);
            assertThat(r.records).isEqualTo(4);
            assertThat(r.flagged).isTrue();
            OutputDrift y = r.outputs.get(0);
            assertThat(y.output).isEqualTo("y");
            assertThat(y.elements).isEqualTo(12);
            assertThat(y.maxAbsError).isCloseTo(0.01, within(1e-6));
            assertThat(y.fractionOutside).isEqualTo(1.0);
            assertThat(y.top1Agreement).isEqualTo(1.0);
            assertThat(h.extractOutputValues()).hasSize(8); // scoring is unaffected
        } finally {
            h.close();
        }
    }

    @Test
    void twinThatFavoursOneClassLowersTopOneAgreementByTheExpectedShare() throws Exception {
        TestModels.Mlp served = new TestModels.Mlp(8, 16, 3);
        TestModels.Mlp twin = new TestModels.Mlp(8, 16, 3);
        twin.b2[0] += 100f; // the reference always picks class 0
        String model = served.writeTo(dir.resolve("served.onnx")).toString();
        var h = harness(
                mlpSpec(model)
                        .driftAgainstModel(
                                twin.writeTo(dir.resolve("twin.onnx")).toString(), 1.0)
                        .build(),
                20);
        try {
            long classZero = 0;
            for (int k = 0; k < 20; k++) {
                float[] x = TestModels.features(k, 8);
                float[] y = served.reference(x);
                if (y[0] >= y[1] && y[0] >= y[2]) {
                    classZero++;
                }
                h.processElement(x, k);
            }
            assertThat(driftReports(h).get(0).outputs.get(0).top1Agreement).isEqualTo(classZero / 20.0);
        } finally {
            h.close();
        }
    }

    @Test
    void identicalTwinIsNotFlagged() throws Exception {
        TestModels.Mlp served = new TestModels.Mlp(8, 16, 3);
        String model = served.writeTo(dir.resolve("served.onnx")).toString();
        String twin =
                new TestModels.Mlp(8, 16, 3).writeTo(dir.resolve("twin.onnx")).toString();
        var h = harness(mlpSpec(model).driftAgainstModel(twin, 0.5).build(), 2);
        try {
            for (int k = 0; k < 8; k++) {
                h.processElement(TestModels.features(k, 8), k);
            }
            List<DriftReport> reports = driftReports(h);
            assertThat(reports).hasSize(2); // 4 batches at a sample fraction of 0.5
            assertThat(reports).allSatisfy(r -> {
                assertThat(r.flagged).isFalse();
                assertThat(r.outputs.get(0).maxAbsError).isZero();
            });
        } finally {
            h.close();
        }
    }

    static Stream<String> backendCases() {
        return Stream.of(
                "pytorch-converted/test_Conv2d",
                "pytorch-converted/test_Softmax",
                "pytorch-converted/test_Embedding",
                "pytorch-converted/test_MaxPool2d",
                "node/test_gemm_default_matrix_bias",
                "node/test_batchnorm_example",
                "node/test_argmax_default_axis_example",
                "node/test_gather_0");
    }

    @ParameterizedTest
    @MethodSource("backendCases")
    void onnxBackendGoldenVectorsPass(String testCase) throws Exception {
        Path folder = BACKEND.resolve(testCase);
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        folder.resolve("model.onnx").toString())
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> new float[0], PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .driftAgainstGoldenVectors(folder.toString(), Duration.ofMinutes(10))
                .build();
        try (InferenceRunner<float[], float[]> runner = Runners.open(spec);
                DriftMonitor<float[]> drift = new DriftMonitor<>(
                        spec.drift(),
                        runner.modelName(),
                        runner.signature(),
                        runner.session().session(),
                        0,
                        false)) {
            drift.open("test-slot", null, 0, -1);
            DriftReport r = drift.checkGolden(0);
            assertThat(r.source).isEqualTo(DriftReport.Source.GOLDEN_VECTORS);
            assertThat(r.records).isEqualTo(1);
            assertThat(r.outputs).isNotEmpty().allSatisfy(o -> assertThat(o.elements)
                    .isPositive());
            assertThat(r.flagged).as("%s", r).isFalse();
        }
    }

    @Test
    void wrongGoldenReferenceIsFlagged() throws Exception {
        Path source = BACKEND.resolve("pytorch-converted/test_Conv2d");
        Path set = Files.createDirectories(dir.resolve("linear/test_data_set_0"));
        Files.copy(source.resolve("test_data_set_0/input_0.pb"), set.resolve("input_0.pb"));
        TensorProto expected = TensorProto.parseFrom(Files.readAllBytes(source.resolve("test_data_set_0/output_0.pb")));
        float[] values = (float[]) TensorData.of(expected).values();
        TensorProto.Builder wrong = expected.toBuilder().clearRawData().clearFloatData();
        for (int i = 0; i < values.length; i++) {
            wrong.addFloatData(i == 0 ? values[i] + 0.5f : values[i]);
        }
        Files.write(set.resolve("output_0.pb"), wrong.build().toByteArray());

        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        source.resolve("model.onnx").toString())
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> new float[0], PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .driftAgainstGoldenVectors(dir.resolve("linear").toString(), Duration.ofMinutes(1))
                .build();
        var h = harness(spec, 4);
        try {
            List<DriftReport> atStart = driftReports(h);
            assertThat(atStart).hasSize(1);
            DriftReport r = atStart.get(0);
            assertThat(r.flagged).isTrue();
            assertThat(r.outputs.get(0).maxAbsError).isCloseTo(0.5, within(1e-5));
            assertThat(r.outputs.get(0).fractionOutside).isEqualTo(1.0 / values.length);
            h.setProcessingTime(Duration.ofMinutes(1).toMillis());
            assertThat(driftReports(h)).hasSize(2); // checked again on the interval
        } finally {
            h.close();
        }
    }

    @Test
    void recordReferencesWithinToleranceAreNotFlaggedAndWrongOnesAre() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(8, 16, 3);
        String model = mlp.writeTo(dir.resolve("m.onnx")).toString();
        // The reference travels with the record: features followed by the expected scores.
        OnnxInferenceSpec<float[][], float[]> spec = OnnxInference.<float[][]>builder(model)
                .encoder((r, row) -> row.put(r[0]))
                .decoder((r, out) -> out.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .driftAgainstRecords(r -> Map.of("y", r[1]), 1.0)
                .build();
        OneInputStreamOperatorTestHarness<float[][], float[]> h = Harnesses.open(
                spec, BatchPolicy.builder().maxBatchSize(2).build(), TypeInformation.of(float[][].class));
        try {
            float[] x0 = TestModels.features(0, 8);
            float[] x1 = TestModels.features(1, 8);
            h.processElement(new float[][] {x0, mlp.reference(x0)}, 0);
            h.processElement(new float[][] {x1, mlp.reference(x1)}, 1);
            float[] off = mlp.reference(x1).clone();
            off[2] += 0.1f;
            h.processElement(new float[][] {x0, mlp.reference(x0)}, 2);
            h.processElement(new float[][] {x1, off}, 3);
            List<DriftReport> reports = driftReports(h);
            assertThat(reports).extracting(r -> r.source).containsOnly(DriftReport.Source.RECORD_REFERENCE);
            assertThat(reports).extracting(r -> r.flagged).containsExactly(false, true);
            assertThat(reports.get(1).outputs.get(0).maxAbsError).isCloseTo(0.1, within(1e-5));
            assertThat(reports.get(1).outputs.get(0).fractionOutside).isCloseTo(1 / 6.0, within(1e-9));
        } finally {
            h.close();
        }
    }

    @Test
    void mapFunctionReportsDriftAsItsLatestReportAndGauges() throws Exception {
        TestModels.Mlp served = new TestModels.Mlp(8, 16, 3);
        TestModels.Mlp twin = new TestModels.Mlp(8, 16, 3);
        twin.b2[1] -= 0.02f;
        String model = served.writeTo(dir.resolve("served.onnx")).toString();
        OnnxInferenceFunction<float[], float[]> fn = mlpSpec(model)
                .driftAgainstModel(twin.writeTo(dir.resolve("twin.onnx")).toString(), 1.0)
                .buildFunction();
        OneInputStreamOperatorTestHarness<float[], float[]> h =
                new OneInputStreamOperatorTestHarness<>(new StreamMap<>(fn));
        h.open();
        try {
            float[] x = TestModels.features(3, 8);
            h.processElement(x, 1);
            assertThat(h.extractOutputValues().get(0)).containsExactly(served.reference(x), within(1e-5f));
            DriftReport r = fn.drift().latest();
            assertThat(r.flagged).isTrue();
            assertThat(r.outputs.get(0).maxAbsError).isCloseTo(0.02, within(1e-6));
        } finally {
            h.close();
        }
    }
}
