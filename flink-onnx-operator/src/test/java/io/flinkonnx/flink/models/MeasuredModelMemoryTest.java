package io.flinkonnx.flink.models;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.session.ResidentMemory;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The model cache's byte bound counts each session's measured resident memory, not its file's size. */
class MeasuredModelMemoryTest {
    private static final TypeInformation<Tuple2<String, float[]>> RECORD =
            Types.TUPLE(Types.STRING, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final TypeInformation<Tuple2<String, float[]>> SCORED = RECORD;

    /** 64 MiB of floats per record in the wide model's run. */
    private static final long WIDE_VALUES = 16L << 20;

    @TempDir
    Path dir;

    @Test
    void aModelWhoseMeasuredFootprintExceedsTheByteBoundEvictsTheOtherThoughBothFilesFit() throws Exception {
        Assumptions.assumeTrue(ResidentMemory.residentBytes() > 0, "needs /proc (Linux)");
        TestModels.Mlp mlp = new TestModels.Mlp(4, 8, 1);
        Path small = mlp.writeTo(dir.resolve("small.onnx"));
        Path wide = TestModels.writeWide(dir.resolve("wide.onnx"), WIDE_VALUES);
        long bound = 16L << 20;
        assertThat(Files.size(small) + Files.size(wide))
                .as("by file size both fit")
                .isLessThan(bound / 1000);
        OnnxInferenceSpec<Tuple2<String, float[]>, Tuple2<String, float[]>> spec =
                OnnxInference.<Tuple2<String, float[]>>builder(small.toString())
                        .encoder((r, row) -> row.put("x", r.f1))
                        .decoder((r, out) -> Tuple2.of(r.f0, out.floats("y")), SCORED)
                        .build();
        MultiModelOperator<Tuple2<String, float[]>, Tuple2<String, float[]>> operator = new MultiModelOperator<>(
                spec,
                r -> ModelRef.of(r.f0),
                BatchPolicy.builder()
                        .maxBatchSize(4)
                        .maxBatchDelay(Duration.ofMillis(5))
                        .build(),
                ModelCache.builder().maxModels(8).maxModelBytes(bound).build(),
                FailedRecord.tag(RECORD));
        try (var h = new OneInputStreamOperatorTestHarness<>(operator)) {
            h.setProcessingTime(0);
            h.open();
            float[] features = TestModels.features(3, 4);
            h.processElement(new StreamRecord<>(Tuple2.of(small.toString(), features), 0));
            h.endInput(); // waits for the load, scores the buffer
            assertThat(operator.evictions()).isZero();
            h.processElement(new StreamRecord<>(Tuple2.of(wide.toString(), new float[] {0.5f}), 1));
            h.endInput();
            assertThat(operator.evictions())
                    .as("the wide model's measured 64+ MiB pushes the small one out")
                    .isEqualTo(1);
            assertThat(operator.loadedModels()).isEqualTo(1);
            h.processElement(new StreamRecord<>(Tuple2.of(small.toString(), features), 2));
            h.endInput();
            assertThat(operator.evictions())
                    .as("and the small one, loaded again, pushes the wide one out")
                    .isEqualTo(2);
            List<Tuple2<String, float[]>> out = new ArrayList<>();
            for (Object o : h.getOutput()) {
                if (o instanceof StreamRecord) {
                    @SuppressWarnings("unchecked")
                    Tuple2<String, float[]> v = ((StreamRecord<Tuple2<String, float[]>>) o).getValue();
                    out.add(v);
                }
            }
            assertThat(out).hasSize(3);
            float[] expected = mlp.reference(features);
            assertThat(out.get(0).f1[0]).isCloseTo(expected[0], within(1e-5f));
            assertThat(out.get(1).f1[0]).isCloseTo(0.5f * WIDE_VALUES, within(1f));
            assertThat(out.get(2).f1[0]).isCloseTo(expected[0], within(1e-5f));
        }
    }
}
