package io.flinkonnx.flink.placement;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model that refuses the synthetic warm-up (a reflect pad needs a length of 2; the warm-up gives 1) still
 * gets its fallback report: measured on the first real batch, emitted on the report side output.
 */
class PlacementFromFirstBatchTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;

    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<float[], float[]> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
        assertThat(SessionStats.open()).isZero();
    }

    private Path writeReflectPad() throws Exception {
        return TestModels.writeReflectPad(dir.resolve("reflect.onnx"));
    }

    private List<FallbackReport> reports() {
        List<FallbackReport> out = new ArrayList<>();
        var queue = harness.getSideOutput(FallbackReport.TAG);
        if (queue != null) {
            for (StreamRecord<FallbackReport> r : queue) {
                out.add(r.getValue());
            }
        }
        return out;
    }

    @Test
    void aModelThatRefusesTheWarmUpGetsItsReportFromTheFirstRealBatch() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        writeReflectPad().toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), FLOATS)
                .build();
        harness = Harnesses.open(spec, BatchPolicy.builder().maxBatchSize(8).build(), FLOATS);
        assertThat(reports()).singleElement().satisfies(r -> {
            assertThat(r.verdict).isEqualTo(FallbackReport.Verdict.UNKNOWN);
            assertThat(r.note).contains("warm-up").contains("first real batch");
        });

        harness.processElement(new float[] {1, 2, 3}, 1);
        harness.processElement(new float[] {4, 5, 6}, 2);
        harness.endInput();

        assertThat(harness.extractOutputValues())
                .containsExactly(new float[] {3, 2, 1, 2, 3, 2, 1}, new float[] {6, 5, 4, 5, 6, 5, 4});
        List<FallbackReport> reports = reports();
        assertThat(reports).hasSize(2);
        FallbackReport measured = reports.get(1);
        assertThat(measured.verdict).isEqualTo(FallbackReport.Verdict.CPU_AS_REQUESTED);
        assertThat(measured.nodes).extracting(n -> n.opType).contains("Pad");
        assertThat(measured.nodes).allSatisfy(n -> assertThat(n.provider).isEqualTo("cpu"));
    }
}
