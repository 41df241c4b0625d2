package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A buffered record keeps its own values until its batch runs, whatever its source does with the arrays. */
class ObjectReuseTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;
    private static final TestModels.Mlp MLP = new TestModels.Mlp(4, 8, 2);

    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<float[], float[]> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
    }

    private static float[] input(int k) {
        return TestModels.features(k, MLP.in);
    }

    private void assertEachRecordGotItsOwnPrediction(List<float[]> out, int records) {
        assertThat(out).hasSize(records);
        for (int k = 0; k < records; k++) {
            assertThat(out.get(k)).as("record %s", k).containsExactly(MLP.reference(input(k)), within(1e-5f));
        }
    }

    @Test
    void withObjectReuseEveryBufferedRecordKeepsItsOwnPrediction() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        MLP.writeTo(dir.resolve("m.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), FLOATS)
                .build();
        harness = Harnesses.openWithObjectReuse(
                spec, BatchPolicy.builder().maxBatchSize(8).build(), FLOATS);
        float[] reused = new float[MLP.in];
        for (int k = 0; k < 5; k++) {
            System.arraycopy(input(k), 0, reused, 0, MLP.in); // the upstream operator refills one instance
            harness.processElement(reused, k);
        }
        harness.endInput();
        assertEachRecordGotItsOwnPrediction(harness.extractOutputValues(), 5);
    }

    @Test
    void withObjectReuseTheDecoderSeesTheRecordAsItWasWhenBuffered() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        MLP.writeTo(dir.resolve("m.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> x.clone(), FLOATS)
                .build();
        harness = Harnesses.openWithObjectReuse(
                spec, BatchPolicy.builder().maxBatchSize(8).build(), FLOATS);
        float[] reused = new float[MLP.in];
        for (int k = 0; k < 3; k++) {
            System.arraycopy(input(k), 0, reused, 0, MLP.in);
            harness.processElement(reused, k);
        }
        harness.endInput();
        assertThat(harness.extractOutputValues()).containsExactly(input(0), input(1), input(2));
    }

    /** The records a test handed over, by identity: what a decoder checks it was given. */
    private static final Set<Object> HANDED_OVER = Collections.newSetFromMap(new IdentityHashMap<>());

    @Test
    void recordsDeclaredImmutableReachTheDecoderUncopiedAndScoreAsCopiedOnes() throws Exception {
        TypeInformation<Tuple2<Boolean, float[]>> type = Types.TUPLE(Types.BOOLEAN, FLOATS);
        OnnxInferenceSpec<float[], Tuple2<Boolean, float[]>> spec = OnnxInference.<float[]>builder(
                        MLP.writeTo(dir.resolve("m.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> Tuple2.of(HANDED_OVER.contains(x), out.floats("y")), type)
                .build();
        OneInputStreamOperatorTestHarness<float[], Tuple2<Boolean, float[]>> immutable = Harnesses.openWithObjectReuse(
                spec,
                BatchPolicy.builder().maxBatchSize(8).immutableRecords(true).build(),
                FLOATS);
        OneInputStreamOperatorTestHarness<float[], Tuple2<Boolean, float[]>> copied = Harnesses.openWithObjectReuse(
                spec, BatchPolicy.builder().maxBatchSize(8).build(), FLOATS);
        try {
            for (int k = 0; k < 5; k++) {
                float[] record = input(k); // a new array per record, never written again: what the option declares
                HANDED_OVER.add(record);
                immutable.processElement(record, k);
                copied.processElement(record, k);
            }
            immutable.endInput();
            copied.endInput();
            List<Tuple2<Boolean, float[]>> uncopied = immutable.extractOutputValues();
            List<Tuple2<Boolean, float[]>> reference = copied.extractOutputValues();
            assertThat(uncopied).hasSize(5);
            assertThat(reference).hasSize(5);
            for (int k = 0; k < 5; k++) {
                assertThat(uncopied.get(k).f0)
                        .as("record %s reached the decoder as handed over", k)
                        .isTrue();
                assertThat(reference.get(k).f0)
                        .as("record %s reached the decoder as a copy", k)
                        .isFalse();
                assertThat(uncopied.get(k).f1)
                        .containsExactly(reference.get(k).f1)
                        .containsExactly(MLP.reference(input(k)), within(1e-5f));
            }
        } finally {
            HANDED_OVER.clear();
            immutable.close();
            copied.close();
        }
    }

    /** An encoder that copies every record into one scratch array, as allocation-shy encoders do. */
    static final class ScratchEncoder implements RecordEncoder<float[]> {
        private static final long serialVersionUID = 1L;
        private transient float[] scratch;

        @Override
        public void encode(float[] record, InputRow row) {
            if (scratch == null) {
                scratch = new float[record.length];
            }
            System.arraycopy(record, 0, scratch, 0, record.length);
            row.put("x", scratch);
        }
    }

    @Test
    void anEncoderThatRefillsOneScratchArrayDoesNotMixRecords() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        MLP.writeTo(dir.resolve("m.onnx")).toString())
                .encoder(new ScratchEncoder())
                .decoder((x, out) -> out.floats("y"), FLOATS)
                .build();
        harness = Harnesses.open(spec, BatchPolicy.builder().maxBatchSize(8).build(), FLOATS);
        for (int k = 0; k < 6; k++) {
            harness.processElement(input(k), k);
        }
        harness.endInput();
        assertEachRecordGotItsOwnPrediction(harness.extractOutputValues(), 6);
    }
}
