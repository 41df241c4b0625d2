package io.flinkonnx.flink.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import org.apache.flink.api.common.typeinfo.Types;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Partial placement on a real CUDA EP: runs only where ORT has CUDA ({@code ./mvnw -Pgpu verify} on a
 * machine with an NVIDIA GPU). On CPU builds the CPU-side tests of FallbackReportTest cover the fallback.
 */
class CudaPlacementTest {
    @TempDir
    Path dir;

    @Test
    void cudaLeavesTheCpuOnlyKernelsToCpuAndTheReportSaysWhich() throws Exception {
        assumeTrue(
                OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA),
                "needs ONNX Runtime with CUDA (-Pgpu) and a GPU");
        String model = TestModels.writeMixedPlacement(dir.resolve("mixed.onnx")).toString();
        OnnxInferenceSpec<float[], Long> spec = OnnxInference.<float[]>builder(model)
                .providers("cuda(device_id=0) > cpu")
                .encoder((x, row) -> row.put("x", x).put("category", new String[] {"wire"}))
                .decoder((x, out) -> out.longs("code")[0], Types.LONG)
                .build();
        try (InferenceRunner<float[], Long> runner = Runners.open(spec)) {
            FallbackReport r = runner.fallbackReport();
            assertThat(r.registered).containsExactly("cuda", "cpu");
            assertThat(r.verdict).isEqualTo(FallbackReport.Verdict.PARTIAL_FALLBACK);
            assertThat(r.nodes).anySatisfy(n -> assertThat(n.provider).isEqualTo("cuda"));
            assertThat(r.cpuNodes()).extracting(n -> n.opType).contains("LabelEncoder");
            assertThat(runner.infer(new float[8])).isEqualTo(1L);
        }
    }
}
