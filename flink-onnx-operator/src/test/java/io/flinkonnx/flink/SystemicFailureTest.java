package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * When every run fails, the model (not the data) is broken: the job fails with the cause instead of
 * turning the stream into dead letters, and isolating a failing batch costs a bounded number of runs.
 * The gather model's run fails for an index outside [-10, 9].
 */
class SystemicFailureTest {
    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<Long, String> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
    }

    private OnnxInferenceSpec.Builder<Long, String> gather() throws Exception {
        return OnnxInference.<Long>builder(
                        TestModels.writeGather(dir.resolve("g.onnx")).toString())
                .encoder((idx, row) -> row.put("idx", new long[] {idx}))
                .decoder((idx, out) -> idx + "=" + out.floats("row")[0], Types.STRING);
    }

    private void processBatch(long... indices) throws Exception {
        for (long idx : indices) {
            harness.processElement(idx, 0);
        }
    }

    @Test
    void aBrokenSessionFailsTheJobWithTheCauseAfterTheConfiguredNumberOfFailedBatches() throws Exception {
        harness = Harnesses.open(
                gather().maxConsecutiveFailedBatches(3).build(),
                BatchPolicy.builder().maxBatchSize(4).build(),
                Types.LONG);
        // ORT's terminate flag makes every run fail, as a lost device or a corrupted session would
        Harnesses.operator(harness).runner().terminate();
        processBatch(1, 2, 3, 4);
        processBatch(5, 6, 7, 8);
        assertThat(Harnesses.failed(harness, Types.LONG)).hasSize(8);
        assertThatThrownBy(() -> processBatch(1, 2, 3, 4))
                .isInstanceOf(SystemicFailureException.class)
                .hasMessageContaining("failed in 3 batches in a row")
                .hasMessageContaining("and so did a synthetic input")
                .hasCauseInstanceOf(OrtException.class);
        assertThat(harness.extractOutputValues()).isEmpty();
    }

    @Test
    void aBrokenSessionFailsTheJobEvenWhenEveryBatchHoldsOneRecord() throws Exception {
        harness = Harnesses.open(
                gather().maxConsecutiveFailedBatches(3).build(),
                BatchPolicy.builder().maxBatchSize(1).build(),
                Types.LONG);
        Harnesses.operator(harness).runner().terminate();
        processBatch(1, 2);
        assertThatThrownBy(() -> processBatch(3)).isInstanceOf(SystemicFailureException.class);
    }

    @Test
    void badRecordsOnAHealthyModelNeverFailTheJob() throws Exception {
        // Every run fails, batch after batch, but a synthetic input runs: the records are bad, not the session.
        harness = Harnesses.open(
                gather().maxConsecutiveFailedBatches(2).build(),
                BatchPolicy.builder().maxBatchSize(4).build(),
                Types.LONG);
        for (int batch = 0; batch < 5; batch++) {
            processBatch(100, 101, 102, 103);
        }
        processBatch(1, 2, 3, 4);
        assertThat(Harnesses.failed(harness, Types.LONG)).hasSize(20);
        assertThat(harness.extractOutputValues()).containsExactly("1=10.0", "2=20.0", "3=30.0", "4=40.0");
    }

    @Test
    void aBatchWithAnyGoodRunResetsTheCount() throws Exception {
        harness = Harnesses.open(
                gather().maxConsecutiveFailedBatches(2).build(),
                BatchPolicy.builder().maxBatchSize(2).build(),
                Types.LONG);
        processBatch(100, 101);
        processBatch(1, 102); // half good: the model works
        processBatch(103, 104);
        processBatch(2, 3);
        processBatch(105, 106);
        assertThat(harness.extractOutputValues()).containsExactly("1=10.0", "2=20.0", "3=30.0");
        assertThat(Harnesses.failed(harness, Types.LONG)).hasSize(7);
    }

    @Test
    void recordsThatFailAloneInBatchesOfOneNeverFailTheJob() throws Exception {
        // One record failing alone cannot tell a bad record from a broken model: a run of bad records at low
        // traffic (each flushed alone) must not restart the job into the same records again and again.
        harness = Harnesses.open(
                gather().maxConsecutiveFailedBatches(2).build(),
                BatchPolicy.builder().maxBatchSize(1).build(),
                Types.LONG);
        processBatch(100, 101, 102, 103, 104, 105);
        assertThat(Harnesses.failed(harness, Types.LONG)).hasSize(6);
    }

    @Test
    void isolatingABatchWhereEveryRecordFailsIsCappedAndEveryRecordStillGetsAnOutcome() throws Exception {
        harness = Harnesses.open(
                gather().maxConsecutiveFailedBatches(100).build(),
                BatchPolicy.builder().maxBatchSize(64).build(),
                Types.LONG);
        InferenceRunner<Long, String> runner = Harnesses.operator(harness).runner();
        long before = runner.runsStarted();
        for (long i = 0; i < 64; i++) {
            harness.processElement(1000 + i, 0);
        }
        // halving down to single records would take 2 * 64 - 1 = 127 runs
        assertThat(runner.runsStarted() - before).isLessThanOrEqualTo(64 + 2 * 6 + 1);
        assertThat(Harnesses.failed(harness, Types.LONG))
                .hasSize(64)
                .extracting(f -> f.record)
                .doesNotHaveDuplicates();
        assertThat(Harnesses.operator(harness).failedBatchesCount()).isEqualTo(1);
    }

    @Test
    void oneBadRecordInABatchIsIsolatedInFewRunsAndCountsOneFailedBatch() throws Exception {
        harness = Harnesses.open(
                gather().build(), BatchPolicy.builder().maxBatchSize(64).build(), Types.LONG);
        InferenceRunner<Long, String> runner = Harnesses.operator(harness).runner();
        long before = runner.runsStarted();
        for (long i = 0; i < 64; i++) {
            harness.processElement(i == 37 ? 99 : i % 10, 0);
        }
        assertThat(runner.runsStarted() - before).isEqualTo(1 + 2 * 6);
        assertThat(harness.extractOutputValues()).hasSize(63);
        assertThat(Harnesses.failed(harness, Types.LONG))
                .extracting(f -> f.record)
                .containsExactly(99L);
        assertThat(Harnesses.operator(harness).failedBatchesCount()).isEqualTo(1);
    }
}
