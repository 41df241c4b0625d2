package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** When the batching operator runs the model: size, delay (harness processing time), barrier, watermark, end. */
class BatchTriggersTest {
    private static final TypeInformation<Tuple2<Long, float[]>> RECORD =
            Types.TUPLE(Types.LONG, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);

    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private OnnxInferenceSpec<Tuple2<Long, float[]>, Tuple2<Long, float[]>> spec;
    private OneInputStreamOperatorTestHarness<Tuple2<Long, float[]>, Tuple2<Long, float[]>> harness;

    @BeforeEach
    void model() throws Exception {
        mlp = new TestModels.Mlp(8, 16, 3);
        spec = OnnxInference.<Tuple2<Long, float[]>>builder(
                        mlp.writeTo(dir.resolve("mlp.onnx")).toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> Tuple2.of(r.f0, out.floats("y")), RECORD)
                .build();
    }

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
        assertThat(SessionStats.open()).isZero();
    }

    private static Tuple2<Long, float[]> record(long id) {
        return Tuple2.of(id, TestModels.features((int) id, 8));
    }

    private List<Long> emittedIds() {
        List<Long> ids = new ArrayList<>();
        for (Tuple2<Long, float[]> out : harness.extractOutputValues()) {
            assertThat(out.f1).containsExactly(mlp.reference(TestModels.features(out.f0.intValue(), 8)), within(1e-5f));
            ids.add(out.f0);
        }
        return ids;
    }

    private BatchPolicy policy(int size, long delayMillis) {
        return BatchPolicy.builder()
                .maxBatchSize(size)
                .maxBatchDelay(Duration.ofMillis(delayMillis))
                .build();
    }

    @Test
    void fullBatchRunsAtOnceInInputOrder() throws Exception {
        harness = Harnesses.open(spec, policy(3, 1_000), RECORD);
        harness.processElement(record(7), 1);
        harness.processElement(record(3), 2);
        assertThat(harness.extractOutputValues()).isEmpty();
        harness.processElement(record(5), 3);
        assertThat(emittedIds()).containsExactly(7L, 3L, 5L);
    }

    @Test
    void loneRecordWaitsAtMostTheMaxBatchDelay() throws Exception {
        harness = Harnesses.open(spec, policy(64, 20), RECORD);
        harness.processElement(record(1), 1);
        harness.setProcessingTime(19);
        assertThat(harness.extractOutputValues()).isEmpty();
        harness.setProcessingTime(20);
        assertThat(emittedIds()).containsExactly(1L);
    }

    @Test
    void timerOfABatchFlushedBySizeDoesNotCutTheNextBatchShort() throws Exception {
        harness = Harnesses.open(spec, policy(2, 20), RECORD);
        harness.processElement(record(1), 1);
        harness.processElement(record(2), 2); // full: flushed, its timer at 20 is now stale
        harness.setProcessingTime(10);
        harness.processElement(record(3), 3); // new batch, deadline 30
        harness.setProcessingTime(20);
        assertThat(emittedIds()).containsExactly(1L, 2L);
        harness.setProcessingTime(30);
        assertThat(emittedIds()).containsExactly(1L, 2L, 3L);
    }

    @Test
    void batchesDrainedBySizeKeepOneTimerPendingAndALateRecordStillWaitsOnlyTheDelay() throws Exception {
        harness = Harnesses.open(spec, policy(2, 20), RECORD);
        for (long id = 1; id <= 40; id++) {
            harness.processElement(record(id), id); // 20 full batches at time 0
        }
        assertThat(timers()).as("one timer for all the batches drained by size").containsExactly(20L);
        harness.setProcessingTime(5);
        harness.processElement(record(41), 41); // deadline 25, covered by the pending timer at 20
        assertThat(timers()).containsExactly(20L);
        harness.setProcessingTime(20); // that timer fires early for this batch: the deadline is registered
        assertThat(emittedIds()).hasSize(40);
        assertThat(timers()).containsExactly(25L);
        harness.setProcessingTime(25);
        assertThat(emittedIds()).hasSize(41).endsWith(41L);
        assertThat(timers()).isEmpty();
    }

    private List<Long> timers() {
        return new ArrayList<>(harness.getProcessingTimeService().getActiveTimerTimestamps());
    }

    @Test
    void checkpointBarrierFlushesTheBuffer() throws Exception {
        harness = Harnesses.open(spec, policy(64, 10_000), RECORD);
        harness.processElement(record(1), 1);
        harness.processElement(record(2), 2);
        harness.prepareSnapshotPreBarrier(1);
        assertThat(emittedIds()).containsExactly(1L, 2L);
    }

    @Test
    void aCheckpointCoversEveryBufferedRecordExactlyOnce() throws Exception {
        // A task takes its snapshot in two steps, as here: pre-barrier, then state. Whatever the operator
        // emitted before the checkpoint plus whatever a restore from it emits must be each record once:
        // a buffer neither flushed nor kept in state loses records, one both flushed and kept doubles them.
        harness = Harnesses.open(spec, policy(64, 10_000), RECORD);
        harness.processElement(record(1), 1);
        harness.processElement(record(2), 2);
        harness.processElement(record(3), 3);
        harness.prepareSnapshotPreBarrier(1);
        var snapshot = harness.snapshot(1, 10);
        List<Long> beforeCheckpoint = emittedIds();
        harness.close();

        BatchingInferenceOperator<Tuple2<Long, float[]>, Tuple2<Long, float[]>> restoredOperator =
                new BatchingInferenceOperator<>(spec, policy(64, 10_000), FailedRecord.tag(RECORD));
        harness = new OneInputStreamOperatorTestHarness<>(restoredOperator);
        harness.setProcessingTime(0);
        harness.initializeState(snapshot);
        harness.open();
        harness.processElement(record(4), 4);
        harness.endInput();
        List<Long> all = new ArrayList<>(beforeCheckpoint);
        all.addAll(emittedIds());
        assertThat(all).containsExactly(1L, 2L, 3L, 4L);
    }

    @Test
    void endOfInputFlushesTheBuffer() throws Exception {
        harness = Harnesses.open(spec, policy(64, 10_000), RECORD);
        harness.processElement(record(4), 1);
        harness.endInput();
        assertThat(emittedIds()).containsExactly(4L);
    }

    @Test
    void bufferedRecordsAreEmittedBeforeTheWatermarkWithTheirTimestamps() throws Exception {
        harness = Harnesses.open(spec, policy(64, 10_000), RECORD);
        harness.processElement(record(1), 100);
        harness.processElement(record(2), 200);
        harness.processWatermark(new Watermark(250));
        List<Object> output = new ArrayList<>(harness.getOutput());
        assertThat(output).hasSize(3);
        assertThat(((StreamRecord<?>) output.get(0)).getTimestamp()).isEqualTo(100);
        assertThat(((StreamRecord<?>) output.get(1)).getTimestamp()).isEqualTo(200);
        assertThat(output.get(2)).isEqualTo(new Watermark(250));
    }

    @Test
    void byteBoundFlushesBeforeTheSizeBound() throws Exception {
        // 8 floats = 32 bytes a record: 64 bytes hold two records
        harness = Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(64)
                        .maxBatchDelay(Duration.ofSeconds(10))
                        .maxBufferedBytes(64)
                        .build(),
                RECORD);
        harness.processElement(record(1), 1);
        assertThat(harness.extractOutputValues()).isEmpty();
        harness.processElement(record(2), 2);
        assertThat(emittedIds()).containsExactly(1L, 2L);
    }

    @Test
    void zeroDelayScoresEachRecordAsItComes() throws Exception {
        harness = Harnesses.open(spec, policy(64, 0), RECORD);
        harness.processElement(record(9), 1);
        assertThat(emittedIds()).containsExactly(9L);
    }

    @Test
    void manyRecordsInManyBatchesKeepTheirOrderAndValues() throws Exception {
        harness = Harnesses.open(spec, policy(16, 5), RECORD);
        List<Long> sent = new ArrayList<>();
        for (long id = 0; id < 100; id++) {
            harness.processElement(record(id), id);
            sent.add(id);
        }
        harness.setProcessingTime(5);
        assertThat(emittedIds()).containsExactlyElementsOf(sent);
    }
}
