package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.HardeningModels;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * When every run fails, the model (not the data) is broken: the job fails with the cause instead of
 * turning the stream into dead letters, and isolating a failing batch costs a bounded number of runs.
 * The gather model's run fails for an index outside [-10, 9]; the convolution's (kernel 3, no padding) for a
 * record shorter than 3, and for the synthetic input of length 1 its warm-up tried.
 */
class SystemicFailureTest {
    @TempDir
    Path dir;

    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;

    private OneInputStreamOperatorTestHarness<Long, String> harness;
    private OneInputStreamOperatorTestHarness<float[], float[]> conv;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
        if (conv != null) {
            conv.close();
        }
        assertThat(SessionStats.open()).isZero();
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
                .hasMessageContaining("and so did synthetic inputs of ones at every free length")
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

    // ---- a model that cannot run the synthetic input (a convolution of kernel 3 over a free length) ----

    private void openConv(BatchPolicy policy) throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(
                        HardeningModels.writeConv1dKernel3(dir.resolve("conv.onnx"))
                                .toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), FLOATS)
                .build(); // maxConsecutiveFailedBatches: the default, 10
        conv = Harnesses.open(spec, policy, FLOATS);
    }

    /** Records of length 3 to 6 and the window sums of three the model gives for them. */
    private List<float[]> scoreGoodRecords(int first, int count, List<float[]> expected) throws Exception {
        List<float[]> records = new ArrayList<>();
        for (int k = first; k < first + count; k++) {
            float[] x = new float[3 + k % 4];
            for (int j = 0; j < x.length; j++) {
                x[j] = k + j;
            }
            float[] y = new float[x.length - 2];
            for (int j = 0; j < y.length; j++) {
                y[j] = x[j] + x[j + 1] + x[j + 2];
            }
            records.add(x);
            expected.add(y);
            conv.processElement(x, k);
        }
        return records;
    }

    /** {@code batches} full batches of 4 records of length 1 or 2, every one too short for the kernel. */
    private void tooShortBurst(int batches) throws Exception {
        for (int i = 0; i < 4 * batches; i++) {
            conv.processElement(i % 2 == 0 ? new float[] {i} : new float[] {i, i + 1}, i);
        }
    }

    @Test
    void aBurstOfTooShortRecordsBeforeAnyRecordScoredIsDeadLetteredWithoutFailingTheJob() throws Exception {
        // After a restart the source replays the burst first: nothing has scored on the new session, and the
        // synthetic input at length 1 fails like the records; at a longer length it runs: the session answers.
        openConv(BatchPolicy.builder().maxBatchSize(4).build());
        tooShortBurst(12);
        assertThat(Harnesses.failed(conv, FLOATS)).hasSize(48).allSatisfy(f -> assertThat(f.reason)
                .contains("Conv"));
        List<float[]> expected = new ArrayList<>();
        scoreGoodRecords(0, 8, expected);
        conv.endInput();
        assertThat(conv.extractOutputValues()).containsExactlyElementsOf(expected);
    }

    @Test
    void aBurstOfTooShortRecordsAfterGoodOnesIsDeadLetteredWithoutFailingTheJob() throws Exception {
        openConv(BatchPolicy.builder().maxBatchSize(4).build());
        List<float[]> expected = new ArrayList<>();
        scoreGoodRecords(0, 8, expected);
        tooShortBurst(25); // more than twice maxConsecutiveFailedBatches: the session is probed twice
        scoreGoodRecords(8, 8, expected);
        conv.endInput();
        assertThat(Harnesses.failed(conv, FLOATS)).hasSize(100);
        assertThat(conv.extractOutputValues()).containsExactlyElementsOf(expected);
    }

    @Test
    void aSessionThatBreaksAfterScoringFailsTheJobThoughItsSyntheticInputNeverRan() throws Exception {
        // The probe is a record that scored on this session: it fails too, so the session is broken.
        openConv(BatchPolicy.builder().maxBatchSize(4).build());
        List<float[]> expected = new ArrayList<>();
        scoreGoodRecords(0, 4, expected);
        Harnesses.operator(conv).runner().terminate();
        assertThatThrownBy(() -> scoreGoodRecords(4, 40, new ArrayList<>()))
                .isInstanceOf(SystemicFailureException.class)
                .hasMessageContaining("failed in 10 batches in a row")
                .hasMessageContaining("and so did a record that scored earlier on this session")
                .hasCauseInstanceOf(OrtException.class);
        assertThat(conv.extractOutputValues()).containsExactlyElementsOf(expected);
        assertThat(Harnesses.failed(conv, FLOATS)).hasSize(36);
    }

    @Test
    void aSessionBrokenFromItsLoadFailsTheJobThoughNothingEverScoredOnIt() throws Exception {
        // Nothing is known to run and every synthetic length fails too: broken from the start (a device
        // lost before the first record), not records too short for the model.
        openConv(BatchPolicy.builder().maxBatchSize(4).build());
        Harnesses.operator(conv).runner().terminate();
        assertThatThrownBy(() -> scoreGoodRecords(0, 40, new ArrayList<>()))
                .isInstanceOf(SystemicFailureException.class)
                .hasMessageContaining("failed in 10 batches in a row")
                .hasMessageContaining("and so did synthetic inputs of ones at every free length from 1 to 1024")
                .hasCauseInstanceOf(OrtException.class);
        assertThat(conv.extractOutputValues()).isEmpty();
    }
}
