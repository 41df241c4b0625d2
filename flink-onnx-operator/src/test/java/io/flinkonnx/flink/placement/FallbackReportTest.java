package io.flinkonnx.flink.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.NodePlacement;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.ProviderResolution;
import io.flinkonnx.providers.SessionOptionsFactory;
import io.flinkonnx.providers.SessionSettings;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.assertj.core.groups.Tuple;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where each kernel runs, measured from ORT's profile of the warm-up run at session load. */
class FallbackReportTest {
    private static final boolean CUDA = OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA);

    @TempDir
    Path dir;

    @Test
    void parsesNodePlacementsFromARealOrtProfile() throws Exception {
        String trace;
        try (var in = getClass().getResourceAsStream("/traces/mlp-8-16-3-cpu-ort-1.24.2.json")) {
            trace = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        List<NodePlacement> nodes = ProfileTraceParser.parse(trace);
        assertThat(nodes)
                .extracting(n -> n.name, n -> n.opType, n -> n.provider)
                .containsExactly(Tuple.tuple("fused gemm_0", "FusedGemm", "cpu"), Tuple.tuple("gemm_2", "Gemm", "cpu"));
        assertThat(nodes).allSatisfy(n -> assertThat(n.durationMicros).isPositive());
    }

    @Test
    void mapsOrtProviderNamesToChainIds() {
        assertThat(ProfileTraceParser.providerId("CUDAExecutionProvider")).isEqualTo("cuda");
        assertThat(ProfileTraceParser.providerId("TensorrtExecutionProvider")).isEqualTo("tensorrt");
        assertThat(ProfileTraceParser.providerId("DmlExecutionProvider")).isEqualTo("directml");
        assertThat(ProfileTraceParser.providerId("CPUExecutionProvider")).isEqualTo("cpu");
    }

    @Test
    void cpuChainReportsEveryKernelOfTheOptimizedGraphOnCpu() throws Exception {
        String model =
                new TestModels.Mlp(8, 16, 3).writeTo(dir.resolve("m.onnx")).toString();
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(model).spec())) {
            FallbackReport r = runner.fallbackReport();
            assertThat(r.verdict).isEqualTo(FallbackReport.Verdict.CPU_AS_REQUESTED);
            // Gemm + Relu were fused by ORT's optimizer: the report describes the graph that runs.
            assertThat(r.nodes).extracting(n -> n.opType).containsExactly("FusedGemm", "Gemm");
            assertThat(r.nodes).extracting(n -> n.provider).containsOnly("cpu");
            assertThat(r.epBoundaries).isZero();
            assertThat(r.fellBackToCpu()).isFalse();
        }
    }

    @Test
    void cudaRequestedOnThisCpuBuildIsSkippedWithOrtEpFailAndEveryNodeIsOnCpu() throws Exception {
        if (CUDA) {
            return; // a GPU build places nodes on CUDA: covered by CudaPlacementTest
        }
        String model =
                new TestModels.Mlp(8, 16, 3).writeTo(dir.resolve("m.onnx")).toString();
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(model)
                .withProviders("cuda(device_id=0) > cpu")
                .spec())) {
            FallbackReport r = runner.fallbackReport();
            assertThat(r.verdict).isEqualTo(FallbackReport.Verdict.ALL_ON_CPU);
            assertThat(r.preferred).isEqualTo("cuda");
            assertThat(r.registered).containsExactly("cpu");
            assertThat(r.skipped).containsExactly("cuda: ORT_EP_FAIL: Failed to find CUDA shared provider");
            assertThat(r.nodesOnCpu).isEqualTo(r.nodes.size()).isEqualTo(2);
            assertThat(r.nodesOffPreferred).isEqualTo(2);
            assertThat(r.cpuTimeFraction).isEqualTo(1.0);
            assertThat(r.fellBackToCpu()).isTrue();
            assertThat(r.summary())
                    .startsWith("ALL_ON_CPU for " + model + " (subtask 0): asked cuda(device_id=0) > cpu");
        }
    }

    @Test
    void failOnCpuFallbackFailsAtStartListingTheNodes() throws Exception {
        if (CUDA) {
            return;
        }
        String model =
                new TestModels.Mlp(8, 16, 3).writeTo(dir.resolve("m.onnx")).toString();
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(model)
                .providers("cuda > cpu")
                .failOnCpuFallback(true)
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> out.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        assertThatThrownBy(() -> Runners.open(spec))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("asked for cuda > cpu with failOnCpuFallback, but 2 of 2 nodes would run on cpu")
                .hasMessageContaining("fused gemm_0 (FusedGemm) on cpu")
                .hasMessageContaining("skipped: [cuda: ORT_EP_FAIL");
        assertThat(SessionStats.open()).isZero();
    }

    @Test
    void aggregatesPartialPlacementBoundariesAndTimeFractions() {
        // Placements as a CUDA session reports them when it leaves an op to CPU (ORT inserts the copies).
        List<NodePlacement> nodes = List.of(
                new NodePlacement("conv_0", "Conv", "cuda", 60),
                new NodePlacement("memcpy_to_host", "MemcpyToHost", "cuda", 5),
                new NodePlacement("nms_1", "NonMaxSuppression", "cpu", 30),
                new NodePlacement("memcpy_from_host", "MemcpyFromHost", "cuda", 5));
        ProviderResolution resolution = resolutionOf("cuda > cpu");
        FallbackReport r = FallbackReport.of("m.onnx", "abc", 3, resolution, nodes, null);
        assertThat(r.verdict).isEqualTo(FallbackReport.Verdict.PARTIAL_FALLBACK);
        assertThat(r.nodesOnCpu).isEqualTo(1);
        assertThat(r.nodesOffPreferred).isEqualTo(1);
        assertThat(r.cpuTimeFraction).isEqualTo(0.3);
        assertThat(r.epBoundaries).isEqualTo(2);
        assertThat(r.copyNodes).isEqualTo(2);
        assertThat(r.cpuNodes()).extracting(n -> n.name).containsExactly("nms_1");
        assertThat(r.fellBackToCpu()).isTrue();
    }

    private static ProviderResolution resolutionOf(String chain) {
        // The resolution of a real SessionOptionsFactory call; on this CPU build cuda is skipped, which the
        // aggregation above does not depend on.
        try (var configured = SessionOptionsFactory.create(ProviderChain.parse(chain), SessionSettings.defaults())) {
            return configured.resolution();
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void batchingOperatorEmitsItsReportOnTheSideOutputAtStart() throws Exception {
        String model =
                new TestModels.Mlp(8, 16, 3).writeTo(dir.resolve("m.onnx")).toString();
        OneInputStreamOperatorTestHarness<float[], float[]> h = Harnesses.open(
                new OnnxInference(model).spec(),
                BatchPolicy.defaults(),
                PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
        try {
            var reports = h.getSideOutput(FallbackReport.TAG);
            assertThat(reports).hasSize(1);
            FallbackReport r = reports.peek().getValue();
            assertThat(r.model).isEqualTo(model);
            assertThat(r.nodes).hasSize(2);
        } finally {
            h.close();
        }
    }
}
