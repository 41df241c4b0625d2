package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.HardeningModels;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The memory a record or a batch may take is bounded, checked before it is taken, and given back. */
class RecordBoundsTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;

    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<float[], Float> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
    }

    private OnnxInferenceSpec.Builder<float[], Float> meanPool() throws Exception {
        return OnnxInference.<float[]>builder(
                        HardeningModels.writeMeanPool(dir.resolve("mean.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y")[0], Types.FLOAT);
    }

    @Test
    void aRecordAboveMaxRecordBytesIsADeadLetterNamingItsSizeAndTheBound() throws Exception {
        harness = Harnesses.open(
                meanPool().maxRecordBytes(1000).build(),
                BatchPolicy.builder().maxBatchSize(4).build(),
                FLOATS);
        harness.processElement(new float[250], 1); // 1000 bytes: at the bound
        harness.processElement(new float[251], 2); // 1004 bytes: over it
        harness.endInput();
        assertThat(harness.extractOutputValues()).containsExactly(0f);
        assertThat(Harnesses.failed(harness, FLOATS))
                .singleElement()
                .satisfies(f -> assertThat(f.reason).contains("1004 bytes").contains("maxRecordBytes (1000)"));
    }

    @Test
    void anExplicitShapeWhoseSizeOverflowsIsADeadLetter() throws Exception {
        OnnxInferenceSpec<float[], Float> spec = OnnxInference.<float[]>builder(
                        HardeningModels.writeSum2d(dir.resolve("sum2d.onnx")).toString())
                // 7 x 0x6DB6DB6DB6DB6DB7 is 1 modulo 2^64: a wrapping product would match the one value given
                .encoder((x, row) ->
                        row.put("x", x, x.length == 1 ? new long[] {7, 0x6DB6DB6DB6DB6DB7L} : new long[] {1, x.length}))
                .decoder((x, out) -> out.floats("y")[0], Types.FLOAT)
                .build();
        harness = Harnesses.open(spec, BatchPolicy.defaults(), FLOATS);
        harness.processElement(new float[] {7}, 1);
        harness.processElement(new float[] {1, 2}, 2);
        harness.endInput();
        assertThat(harness.extractOutputValues()).containsExactly(3f);
        assertThat(Harnesses.failed(harness, FLOATS)).singleElement().satisfies(f -> assertThat(f.reason)
                .contains("more values than a long counts"));
    }

    @Test
    void aBatchTooLargeToPackIsIsolatedLikeAFailedRunAndItsRecordsScoredAlone() throws Exception {
        // [50000,1] and [1,50000] padded together would be 2 x 50000 x 50000 values: more than a tensor holds
        OnnxInferenceSpec<float[], Float> spec = OnnxInference.<float[]>builder(
                        HardeningModels.writeSum2d(dir.resolve("sum2d.onnx")).toString())
                .encoder((x, row) -> row.put("x", x, x[0] == 1 ? new long[] {x.length, 1} : new long[] {1, x.length}))
                .decoder((x, out) -> out.floats("y")[0], Types.FLOAT)
                .build();
        float[] tall = new float[50_000];
        Arrays.fill(tall, 1f);
        float[] wide = new float[50_000];
        Arrays.fill(wide, 2f);
        harness = Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .padWithoutMask(true)
                        .bucketByLength(false) // so that the two records are packed together
                        .maxBufferedBytes(Long.MAX_VALUE)
                        .build(),
                FLOATS);
        harness.processElement(tall, 1);
        harness.processElement(wide, 2);
        harness.endInput();
        assertThat(harness.extractOutputValues()).containsExactly(50_000f, 100_000f);
        assertThat(Harnesses.failed(harness, FLOATS)).isEmpty();
        assertThat(Harnesses.operator(harness).failedBatchesCount()).isEqualTo(1);
    }

    @Test
    void maxBufferedBytesCountsPaddingAndIsCheckedBeforeARecordIsAdded() throws Exception {
        float[] a = new float[100];
        Arrays.fill(a, 1f);
        float[] b = new float[200];
        // padded together: 2 x 200 x 4 = 1600 bytes. Under a 2000-byte bound they share a run, and with
        // padding opted in the short record's mean is taken over 200 positions.
        harness = Harnesses.open(
                meanPool().build(),
                BatchPolicy.builder()
                        .padWithoutMask(true)
                        .bucketByLength(false) // lengths 100 and 200 would otherwise run apart
                        .maxBufferedBytes(2000)
                        .build(),
                FLOATS);
        harness.processElement(a, 1);
        harness.processElement(b, 2);
        harness.endInput();
        assertThat(harness.extractOutputValues().get(0)).isCloseTo(0.5f, within(1e-6f));
        harness.close();
        // Under a 1000-byte bound, the buffer (400 bytes) is scored before b joins it: a alone, mean 1.
        harness = Harnesses.open(
                meanPool().build(),
                BatchPolicy.builder()
                        .padWithoutMask(true)
                        .bucketByLength(false)
                        .maxBufferedBytes(1000)
                        .build(),
                FLOATS);
        harness.processElement(a, 1);
        assertThat(harness.extractOutputValues()).isEmpty();
        harness.processElement(b, 2);
        assertThat(harness.extractOutputValues()).containsExactly(1f);
        harness.endInput();
        assertThat(harness.extractOutputValues()).containsExactly(1f, 0f);
    }

    /**
     * When the byte bound, not the batch size, ends every batch, each record is parked while the buffer ahead
     * of it runs and then starts the next batch: the staging starts over with it and stays the size of one
     * batch, however many records pass.
     */
    @Test
    void theStagingStaysBoundedWhenTheByteBoundEndsEveryBatch() throws Exception {
        float[] record = new float[1000]; // 4 KB; the bound lets 2 share a batch
        Arrays.fill(record, 1f);
        harness = Harnesses.open(
                meanPool().build(),
                BatchPolicy.builder().maxBatchSize(64).maxBufferedBytes(10_000).build(),
                FLOATS);
        for (int i = 0; i < 2_000; i++) {
            harness.processElement(record.clone(), i);
        }
        io.flinkonnx.flink.tensor.RowStaging staging =
                Harnesses.operator(harness).buffer().nextRow().staging();
        assertThat(staging.retainedBytes()).as("staging after 2,000 records").isLessThan(64 * 1024);
        harness.endInput();
        assertThat(harness.extractOutputValues()).hasSize(2_000).containsOnly(1f);
    }

    @Test
    void packedBuffersGrownForAnOutlierAreReleasedAfterwards() throws Exception {
        OnnxInferenceSpec<float[], Float> spec = meanPool().build();
        try (InferenceRunner<float[], Float> runner = Runners.open(spec)) {
            TensorPacker packer =
                    new TensorPacker(OrtRuntime.env(), runner.signature().inputs(), 0, -1);
            RecordInputs row = new RecordInputs("m", runner.signature().inputs());
            row.put("x", new float[2_000_000]); // 8 MB
            packer.pack(new RecordInputs[] {row}, 0, 1).values().forEach(OnnxTensor::close);
            assertThat(packer.retainedBytes()).isGreaterThanOrEqualTo(8_000_000);
            for (int i = 0; i <= TensorPacker.SHRINK_WINDOW; i++) {
                row.reset();
                row.put("x", new float[16]);
                packer.pack(new RecordInputs[] {row}, 0, 1).values().forEach(OnnxTensor::close);
            }
            assertThat(packer.retainedBytes()).isLessThan(TensorPacker.SHRINK_FLOOR_BYTES);
        }
    }

    @Test
    void theDerivedAttentionMaskCacheHoldsAFewLengthsOnly() throws Exception {
        OnnxInferenceSpec<long[], long[]> spec = OnnxInference.<long[]>builder(
                        TestModels.writeTokenModel(dir.resolve("tokens.onnx")).toString())
                .encoder((ids, row) -> row.put("input_ids", ids))
                .decoder((ids, out) -> out.longs("length"), PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (InferenceRunner<long[], long[]> runner = Runners.open(spec)) {
            for (int length = 1; length <= 200; length++) {
                assertThat(runner.infer(new long[length])).containsExactly(length);
            }
            assertThat(runner.maskCacheSize()).isLessThanOrEqualTo(16);
        }
    }
}
