package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.HardeningModels;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.StatefulModels;
import io.flinkonnx.flink.models.MultiModelOperator;
import io.flinkonnx.flink.stateful.StatefulInferenceOperator;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code maxBufferedBytes} means the same in the three buffering operators (batching, stateful, many models):
 * the buffer's bytes as packed, every buffered record padded to the widest record's dims, counted before a
 * record joins; a record that would take the buffer past the bound makes the buffer score first, and joins
 * the next batch. The harnesses' processing time stands still: batches close by size, bytes or end of input.
 *
 * <p>Records here are 12 bytes (3 floats: one step of 3 features, or a sequence of 3) and 96 bytes (24 floats:
 * 8 steps of 3, or a sequence of 24), all of different keys.
 */
class BufferedBytesBoundTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;
    /** (key, features) for the stateful operator. */
    private static final TypeInformation<Tuple2<Integer, float[]>> KEYED =
            Types.TUPLE(Types.INT, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);

    @TempDir
    Path dir;

    private AutoCloseable harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
        assertThat(SessionStats.open()).isZero();
    }

    private static BatchPolicy bound(long bytes) {
        return BatchPolicy.builder()
                .maxBatchSize(64)
                .maxBatchDelay(Duration.ofSeconds(1))
                .maxBufferedBytes(bytes)
                .padWithoutMask(true) // records of different lengths may share a run, padded
                .build();
    }

    private static float[] values(int n, int seed) {
        float[] x = new float[n];
        for (int k = 0; k < n; k++) {
            x[k] = (seed * 31 + k) % 7 / 7f;
        }
        return x;
    }

    // ---- the three operators, over models whose record inputs are the floats above ----

    /** The batching operator on a mean pooling over a free length: the reference definition. */
    private OneInputStreamOperatorTestHarness<float[], float[]> batching(BatchPolicy policy) throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        HardeningModels.writeMeanPool(dir.resolve("mean.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), FLOATS)
                .build();
        var h = Harnesses.open(spec, policy, FLOATS);
        harness = h;
        return h;
    }

    /** The many-models operator on the same mean pooling (the spec's own model), loaded before the test. */
    private OneInputStreamOperatorTestHarness<float[], float[]> manyModels(BatchPolicy policy) throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        HardeningModels.writeMeanPool(dir.resolve("mean.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), FLOATS)
                .build();
        var operator =
                new MultiModelOperator<>(spec, x -> null, policy, ModelCache.defaults(), FailedRecord.tag(FLOATS));
        var h = new OneInputStreamOperatorTestHarness<>(operator);
        harness = h;
        h.setProcessingTime(0);
        h.open();
        h.processElement(new StreamRecord<>(values(3, 0), 0));
        h.prepareSnapshotPreBarrier(1); // waits for the model's load and scores the record
        assertThat(h.extractOutputValues()).hasSize(1);
        h.getOutput().clear();
        return h;
    }

    /** The stateful operator on the LSTM (3 features a step, state h, c per key). */
    private KeyedOneInputStreamOperatorTestHarness<Integer, Tuple2<Integer, float[]>, float[]> stateful(
            BatchPolicy policy) throws Exception {
        OnnxInferenceSpec<Tuple2<Integer, float[]>, float[]> spec = OnnxInference.<Tuple2<Integer, float[]>>builder(
                        StatefulModels.writeLstm(dir.resolve("lstm.onnx")).toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> out.floats("y"), FLOATS)
                .build();
        var operator = new StatefulInferenceOperator<>(
                spec,
                policy,
                RecurrentState.<Tuple2<Integer, float[]>>builder()
                        .state("h", "hn")
                        .state("c", "cn")
                        .build(),
                FailedRecord.tag(KEYED));
        var h = new KeyedOneInputStreamOperatorTestHarness<>(
                operator, (KeySelector<Tuple2<Integer, float[]>, Integer>) r -> r.f0, Types.INT);
        harness = h;
        h.setProcessingTime(0);
        h.open();
        return h;
    }

    private static void feed(OneInputStreamOperatorTestHarness<float[], float[]> h, int... lengths) throws Exception {
        for (int i = 0; i < lengths.length; i++) {
            h.processElement(new StreamRecord<>(values(lengths[i], i), i));
        }
    }

    private static void feedKeyed(
            KeyedOneInputStreamOperatorTestHarness<Integer, Tuple2<Integer, float[]>, float[]> h, int... lengths)
            throws Exception {
        for (int i = 0; i < lengths.length; i++) {
            h.processElement(new StreamRecord<>(Tuple2.of(i, values(lengths[i], i)), i));
        }
    }

    // ---- a record that would take the buffer past the bound: the buffer is scored first ----

    @Test
    void batchingScoresTheBufferBeforeARecordThatWouldTakeItPastTheBound() throws Exception {
        var h = batching(bound(30));
        feed(h, 3, 3, 3); // 12 + 12 fit in 30; with the third, 36 would not
        assertThat(h.extractOutputValues())
                .as("the first two, scored before the third joins")
                .hasSize(2);
        h.endInput();
        assertThat(h.extractOutputValues()).hasSize(3);
    }

    @Test
    void statefulScoresTheBufferBeforeARecordThatWouldTakeItPastTheBound() throws Exception {
        var h = stateful(bound(30));
        feedKeyed(h, 3, 3, 3);
        assertThat(h.extractOutputValues())
                .as("the first two, scored before the third joins")
                .hasSize(2);
        h.endInput();
        assertThat(h.extractOutputValues()).hasSize(3);
    }

    @Test
    void manyModelsScoresTheBufferBeforeARecordThatWouldTakeItPastTheBound() throws Exception {
        var h = manyModels(bound(30));
        feed(h, 3, 3, 3);
        assertThat(h.extractOutputValues())
                .as("the first two, scored before the third joins")
                .hasSize(2);
        h.endInput();
        assertThat(h.extractOutputValues()).hasSize(3);
    }

    // ---- padding to the widest record counts: 96 + 12 bytes as given, 2 x 96 as packed ----

    @Test
    void batchingCountsPaddingToTheWidestRecordTowardTheBound() throws Exception {
        var h = batching(bound(150));
        feed(h, 24, 3);
        assertThat(h.extractOutputValues())
                .as("the 96-byte record, scored alone")
                .hasSize(1);
        h.endInput();
        assertThat(h.extractOutputValues()).hasSize(2);
    }

    @Test
    void statefulCountsPaddingToTheWidestRecordTowardTheBound() throws Exception {
        var h = stateful(bound(150));
        feedKeyed(h, 24, 3); // 8 steps, then 1 step
        assertThat(h.extractOutputValues())
                .as("the 96-byte record, scored alone")
                .hasSize(1);
        h.endInput();
        assertThat(h.extractOutputValues()).hasSize(2);
    }

    @Test
    void manyModelsCountsPaddingToTheWidestRecordTowardTheBound() throws Exception {
        var h = manyModels(bound(150));
        feed(h, 24, 3);
        assertThat(h.extractOutputValues())
                .as("the 96-byte record, scored alone")
                .hasSize(1);
        h.endInput();
        assertThat(h.extractOutputValues()).hasSize(2);
    }

    // ---- one set of batch metrics: the three operators count the same batches the same way ----

    @Test
    void theThreeOperatorsCountBatchesSizesLatenciesAndQueueTimesTheSameWay() throws Exception {
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(2)
                .maxBatchDelay(Duration.ofSeconds(1))
                .padWithoutMask(true)
                .build();
        var b = batching(policy);
        feed(b, 3, 3, 3, 3, 3);
        b.endInput();
        BatchMetrics batching = Harnesses.operator(b).batchMetrics();
        b.close();
        var m = manyModels(policy); // its warm-up record was one batch of its own
        feed(m, 3, 3, 3, 3, 3);
        m.endInput();
        BatchMetrics many = ((MultiModelOperator<float[], float[]>) m.getOneInputOperator()).batchMetrics("mean");
        m.close();
        var s = stateful(policy);
        feedKeyed(s, 3, 3, 3, 3, 3);
        s.endInput();
        BatchMetrics stateful =
                ((StatefulInferenceOperator<Tuple2<Integer, float[]>, float[]>) s.getOneInputOperator()).batchMetrics();
        harness = null;
        s.close();
        assertThat(List.of(batching, stateful)).allSatisfy(metrics -> {
            assertThat(metrics.batches()).isEqualTo(3);
            assertThat(metrics.inferences()).isEqualTo(5);
            assertThat(metrics.batchSizes().getCount()).isEqualTo(3);
            assertThat(metrics.batchSizes().getStatistics().getMax()).isEqualTo(2);
            assertThat(metrics.batchLatencyMicros().getCount()).isEqualTo(3);
            assertThat(metrics.queueTimeMicros().getCount()).isEqualTo(3);
        });
        assertThat(many.batches()).isEqualTo(4);
        assertThat(many.inferences()).isEqualTo(6);
        assertThat(many.batchSizes().getCount()).isEqualTo(4);
        assertThat(many.batchLatencyMicros().getCount()).isEqualTo(4);
        assertThat(many.queueTimeMicros().getCount()).isEqualTo(4);
    }
}
