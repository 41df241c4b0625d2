package io.flinkonnx.flink.placement;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.testing.OnnxGraph;
import java.nio.file.Path;
import org.apache.flink.api.common.typeinfo.Types;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The placement warm-up is a report, never a reason for a load to fail or leak. */
class WarmUpTest {
    @TempDir
    Path dir;

    @Test
    void aModelWhoseSyntheticInputDoesNotFitInMemoryStillLoadsWithTheReasonInItsReport() throws Exception {
        // x: FLOAT[batch, 2^31 - 1]: a synthetic record would be an array larger than the JVM allows
        Path model = new OnnxGraph("wide")
                .input("x", ElementType.FLOAT, "batch", (long) Integer.MAX_VALUE)
                .output("y", ElementType.FLOAT, "batch", (long) Integer.MAX_VALUE)
                .node("Relu", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve("wide.onnx"));
        OnnxInferenceSpec<float[], Float> spec = OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y")[0], Types.FLOAT)
                .build();
        int openBefore = SessionStats.open();
        try (InferenceRunner<float[], Float> runner = Runners.open(spec)) {
            assertThat(runner.fallbackReport().verdict).isEqualTo(FallbackReport.Verdict.UNKNOWN);
            assertThat(runner.fallbackReport().note).contains("warm-up").contains("too large to synthesize");
            assertThat(SessionStats.open()).isEqualTo(openBefore + 1);
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }
}
