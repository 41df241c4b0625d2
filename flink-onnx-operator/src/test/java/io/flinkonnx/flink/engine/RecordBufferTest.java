package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The record buffer in front of the engine: when a batch is due (size, bytes with padding counted before a
 * record joins, delay), what a drain hands out (every record once, in input order, each scored by its own
 * row), per-key runs, and the batch metrics. Real ORT sessions on models made here; the clock is the test's.
 */
class RecordBufferTest {
    private static final TestModels.Mlp MLP = new TestModels.Mlp(4, 8, 2);

    @TempDir
    Path dir;

    private final List<InferenceRunner<?, ?>> runners = new ArrayList<>();

    @AfterEach
    void closeRunners() {
        runners.forEach(InferenceRunner::close);
    }

    private <IN, OUT> InferenceRunner<IN, OUT> open(OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy)
            throws Exception {
        InferenceRunner<IN, OUT> runner = new InferenceRunner<>(spec);
        runners.add(runner);
        runner.open("buffer-test", 0, null, policy.maxBatchSize(), policy);
        return runner;
    }

    private InferenceRunner<float[], float[]> mlp(BatchPolicy policy) throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        MLP.writeTo(dir.resolve("mlp.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        return open(spec, policy);
    }

    /** Token ids of a free length; the attention mask is derived (8 + 8 bytes a token). */
    private InferenceRunner<long[], Long> tokens(BatchPolicy policy) throws Exception {
        OnnxInferenceSpec<long[], Long> spec = OnnxInference.<long[]>builder(
                        TestModels.writeTokenModel(dir.resolve("tokens.onnx")).toString())
                .encoder((ids, row) -> row.put("input_ids", ids))
                .decoder((ids, out) -> out.longs("length")[0], Types.LONG)
                .build();
        return open(spec, policy);
    }

    private static BatchPolicy policy(int maxBatchSize, long maxBufferedBytes) {
        return BatchPolicy.builder()
                .maxBatchSize(maxBatchSize)
                .maxBatchDelay(Duration.ofMillis(100))
                .maxBufferedBytes(maxBufferedBytes)
                .build();
    }

    private static float[] features(int k) {
        return TestModels.features(k, 4);
    }

    /** The test's clock and the timers the buffer registered on it. */
    private static final class ManualTimers implements RecordBuffer.Timers {
        long now;
        final List<Long> registered = new ArrayList<>();

        @Override
        public long now() {
            return now;
        }

        @Override
        public void register(long time) {
            registered.add(time);
        }
    }

    /** What a drain emitted, in order. */
    private static final class Emitted<IN, OUT> implements RecordBuffer.Emitter<IN, OUT> {
        final List<OUT> results = new ArrayList<>();
        final List<IN> failed = new ArrayList<>();
        final List<String> order = new ArrayList<>();

        @Override
        public void scored(int index, OUT result, boolean hasTimestamp, long timestamp) {
            results.add(result);
            order.add("scored@" + timestamp);
        }

        @Override
        public void failed(int index, IN record, Exception reason) {
            failed.add(record);
            order.add("failed#" + index);
        }
    }

    private static final RecordBuffer.Reports NO_REPORTS = new RecordBuffer.Reports() {
        @Override
        public void drift(DriftReport report) {}

        @Override
        public void placement(FallbackReport report) {}
    };

    private static <IN, OUT> Emitted<IN, OUT> drain(RecordBuffer<IN, OUT> buffer) throws Exception {
        Emitted<IN, OUT> emitted = new Emitted<>();
        int count = buffer.take();
        buffer.score(count, NO_REPORTS);
        buffer.complete(count, emitted);
        return emitted;
    }

    /** {@code results} are the MLP's outputs of features {@code ks}, in that order. */
    private static void assertScores(List<float[]> results, int... ks) {
        assertThat(results).hasSize(ks.length);
        for (int i = 0; i < ks.length; i++) {
            assertThat(results.get(i))
                    .as("result %s", i)
                    .containsExactly(MLP.reference(features(ks[i])), within(1e-5f));
        }
    }

    private static BatchMetrics metrics() {
        return new BatchMetrics(new UnregisteredMetricsGroup());
    }

    @Test
    void aRecordThatWouldCrossTheByteBoundDrainsTheBufferFirstAndStartsTheNextBatch() throws Exception {
        BatchPolicy policy = policy(64, 40); // MLP records are 16 bytes: two fit, a third would not
        RecordBuffer<float[], float[]> buffer =
                new RecordBuffer<>(mlp(policy), 64, policy, metrics(), new ManualTimers(), null);
        List<List<float[]>> drained = new ArrayList<>();
        RecordBuffer.Drain drain = () -> {
            drained.add(drain(buffer).results);
            return true;
        };
        for (int k = 0; k < 3; k++) {
            buffer.add(features(k), true, k, drain);
        }
        assertThat(drained).as("drained before the third record joined").hasSize(1);
        assertScores(drained.get(0), 0, 1);
        assertThat(buffer.size()).isOne();
        assertThat(buffer.bufferedBytes()).isEqualTo(16);
        // the parked record kept its encoding through the drain and starts the next batch
        assertScores(drain(buffer).results, 2);
    }

    @Test
    void theByteBoundCountsEveryRecordPaddedToTheLongestBeforeItJoins() throws Exception {
        // 16 bytes a token (ids + derived mask): 1 token then 10 tokens is 176 bytes unpadded but 320 padded
        BatchPolicy policy = policy(64, 300);
        RecordBuffer<long[], Long> buffer =
                new RecordBuffer<>(tokens(policy), 64, policy, metrics(), new ManualTimers(), null);
        List<List<Long>> drained = new ArrayList<>();
        buffer.add(new long[] {7}, false, 0, () -> false);
        buffer.add(new long[10], false, 0, () -> {
            drained.add(drain(buffer).results);
            return true;
        });
        assertThat(drained).containsExactly(List.of(1L));
        assertThat(buffer.bufferedBytes()).isEqualTo(160);
        assertThat(drain(buffer).results).containsExactly(10L);
    }

    @Test
    void theSizeTriggerAndTheDelayTriggerMakeTheBufferDue() throws Exception {
        BatchPolicy policy = policy(2, 1 << 20);
        ManualTimers timers = new ManualTimers();
        timers.now = 1_000;
        RecordBuffer<float[], float[]> buffer = new RecordBuffer<>(mlp(policy), 2, policy, metrics(), timers, null);
        buffer.add(features(0), false, 0, () -> true);
        assertThat(timers.registered)
                .as("one timer, at the first record's deadline")
                .containsExactly(1_100L);
        assertThat(buffer.due()).isFalse();
        assertThat(buffer.expired(1_099)).isFalse();
        assertThat(buffer.expired(1_100)).isTrue();
        buffer.add(features(1), false, 0, () -> true);
        assertThat(buffer.due()).as("full").isTrue();
        drain(buffer);
        assertThat(buffer.expired(1_100)).as("a stale timer of a drained batch").isFalse();
    }

    @Test
    void withoutTimersTheOwnerAloneDrainsBelowTheSizeAndByteBounds() throws Exception {
        BatchPolicy policy = BatchPolicy.builder().maxBatchSize(4).build(); // no delay
        RecordBuffer<float[], float[]> buffer = new RecordBuffer<>(mlp(policy), 4, policy, metrics(), null, null);
        buffer.add(features(0), false, 0, () -> true);
        assertThat(buffer.due()).isFalse();
        assertThat(buffer.expired(Long.MAX_VALUE)).isFalse();
    }

    @Test
    void aRecordThatDoesNotEncodeLeavesTheBufferAsItWas() throws Exception {
        BatchPolicy policy = policy(8, 1 << 20);
        RecordBuffer<float[], float[]> buffer =
                new RecordBuffer<>(mlp(policy), 8, policy, metrics(), new ManualTimers(), null);
        buffer.add(features(0), true, 10, () -> true);
        assertThatThrownBy(() -> buffer.add(new float[3], true, 11, () -> true))
                .isInstanceOf(RecordConversionException.class);
        assertThat(buffer.size()).isOne();
        assertThat(buffer.bufferedBytes()).isEqualTo(16);
        Emitted<float[], float[]> emitted = drain(buffer);
        assertScores(emitted.results, 0);
        assertThat(emitted.order).containsExactly("scored@10");
    }

    @Test
    void perKeyRunsScoreEachRecordByItsOwnRowAndCompleteInInputOrder() throws Exception {
        BatchPolicy policy = policy(8, 1 << 20);
        BatchMetrics metrics = metrics();
        RecordBuffer<float[], float[]> buffer =
                new RecordBuffer<>(mlp(policy), 8, policy, metrics, new ManualTimers(), null);
        for (int k = 0; k < 5; k++) {
            buffer.add(features(k), true, k, () -> true);
        }
        int count = buffer.take();
        // runs in an order other than the buffer's: rows must follow their records as they move
        int[][] runs = {{3, 1}, {4, 0}, {2}};
        for (int[] members : runs) {
            buffer.scoreRun(members, members.length, new InferenceRunner.Outcomes<>() {
                @Override
                public void scored(int index, float[] result) {
                    buffer.scored(members[index], result);
                }

                @Override
                public void failed(int index, Exception reason) {
                    buffer.failed(members[index], reason);
                }
            });
        }
        Emitted<float[], float[]> emitted = new Emitted<>();
        buffer.complete(count, emitted);
        assertThat(emitted.order).containsExactly("scored@0", "scored@1", "scored@2", "scored@3", "scored@4");
        assertScores(emitted.results, 0, 1, 2, 3, 4);
        assertThat(metrics.batches()).isOne();
        assertThat(metrics.inferences()).isEqualTo(5);
        assertThat(metrics.batchSizes.getStatistics().getMax()).isEqualTo(5);
        assertThat(metrics.queueTimeMicros.getCount()).isOne();
    }

    @Test
    void aRecordTheOwnerFailsIsEmittedInItsPlaceAndNotCountedAsAnInference() throws Exception {
        BatchPolicy policy = policy(8, 1 << 20);
        BatchMetrics metrics = metrics();
        RecordBuffer<float[], float[]> buffer =
                new RecordBuffer<>(mlp(policy), 8, policy, metrics, new ManualTimers(), null);
        for (int k = 0; k < 3; k++) {
            buffer.add(features(k), true, k, () -> true);
        }
        int count = buffer.take();
        buffer.scored(0, new float[] {1});
        buffer.failUnscored(count, new IllegalStateException("the session broke"));
        Emitted<float[], float[]> emitted = new Emitted<>();
        buffer.complete(count, emitted);
        assertThat(emitted.order).containsExactly("scored@0", "failed#1", "failed#2");
        assertThat(metrics.inferences()).isOne();
        assertThat(metrics.failedBatches())
                .as("a batch whose runner broke failed")
                .isOne();
        // the next drain starts clean: nothing of the last one's outcomes leaks in
        buffer.add(features(5), true, 5, () -> true);
        assertScores(drain(buffer).results, 5);
    }

    @Test
    void theRunnerChangesOnlyWhileTheBufferIsEmpty() throws Exception {
        BatchPolicy policy = policy(8, 1 << 20);
        RecordBuffer<float[], float[]> buffer =
                new RecordBuffer<>(mlp(policy), 8, policy, metrics(), new ManualTimers(), null);
        InferenceRunner<float[], float[]> next = mlp(policy);
        buffer.add(features(0), false, 0, () -> true);
        assertThatThrownBy(() -> buffer.serve(next, 8))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("holds 1 records");
        drain(buffer);
        buffer.serve(next, 8);
        assertThat(buffer.runner()).isSameAs(next);
        buffer.add(features(1), false, 0, () -> true);
        assertScores(drain(buffer).results, 1);
    }
}
