package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A bad record goes to the failed-records output with its reason; the rest of its batch is scored. */
class DeadLetterTest {
    private static final TypeInformation<Tuple2<Long, float[]>> FEATURES =
            Types.TUPLE(Types.LONG, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final BatchPolicy FOUR = BatchPolicy.builder()
            .maxBatchSize(4)
            .maxBatchDelay(Duration.ofSeconds(1))
            .build();

    @TempDir
    Path dir;

    private OneInputStreamOperatorTestHarness<?, ?> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
        assertThat(SessionStats.open()).isZero();
    }

    private OnnxInferenceSpec<Tuple2<Long, float[]>, Long> mlpSpec() throws Exception {
        return OnnxInference.<Tuple2<Long, float[]>>builder(new TestModels.Mlp(8, 8, 2)
                        .writeTo(dir.resolve("m.onnx"))
                        .toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> r.f0, Types.LONG)
                .build();
    }

    @Test
    void malformedRecordsGoToFailedRecordsAndTheRestOfTheBatchIsScored() throws Exception {
        OneInputStreamOperatorTestHarness<Tuple2<Long, float[]>, Long> h = Harnesses.open(mlpSpec(), FOUR, FEATURES);
        harness = h;
        h.processElement(Tuple2.of(1L, new float[8]), 1);
        h.processElement(Tuple2.of(2L, new float[7]), 2); // wrong width
        h.processElement(Tuple2.of(3L, new float[9]), 3); // wrong width again
        h.processElement(Tuple2.of(4L, new float[8]), 4);
        h.processElement(Tuple2.of(5L, new float[8]), 5);
        h.processElement(Tuple2.of(6L, new float[8]), 6);
        h.endInput();

        assertThat(h.extractOutputValues()).containsExactly(1L, 4L, 5L, 6L);
        List<FailedRecord<Tuple2<Long, float[]>>> failed = Harnesses.failed(h, FEATURES);
        assertThat(failed).extracting(f -> f.record.f0).containsExactly(2L, 3L);
        assertThat(failed.get(0).reason)
                .isEqualTo("Input 'x' expects 8 values per record (record shape [8], model"
                        + " shape [batch,8]) but the record has 7");
        assertThat(failed.get(1).reason).endsWith("but the record has 9");
        assertThat(failed).allSatisfy(f -> {
            assertThat(f.model).endsWith("m.onnx");
            assertThat(f.errorType).isEqualTo(RecordConversionException.class.getName());
        });
    }

    /** A POJO record, whose fields may be null (Flink tuples may not). */
    public static class Reading {
        public long id;
        public float[] values;

        public Reading() {}

        Reading(long id, float[] values) {
            this.id = id;
            this.values = values;
        }
    }

    @Test
    void recordWithANullInputGoesToFailedRecords() throws Exception {
        TypeInformation<Reading> type = TypeInformation.of(Reading.class);
        OnnxInferenceSpec<Reading, Long> spec = OnnxInference.<Reading>builder(new TestModels.Mlp(8, 8, 2)
                        .writeTo(dir.resolve("m.onnx"))
                        .toString())
                .encoder((r, row) -> row.put("x", r.values))
                .decoder((r, out) -> r.id, Types.LONG)
                .build();
        OneInputStreamOperatorTestHarness<Reading, Long> h = Harnesses.open(spec, FOUR, type);
        harness = h;
        h.processElement(new Reading(1, null), 1);
        h.processElement(new Reading(2, new float[8]), 2);
        h.endInput();
        assertThat(h.extractOutputValues()).containsExactly(2L);
        List<FailedRecord<Reading>> failed = Harnesses.failed(h, type);
        assertThat(failed).extracting(f -> f.record.id).containsExactly(1L);
        assertThat(failed.get(0).reason).isEqualTo("Input 'x' is null; it expects FLOAT values (float[])");
    }

    @Test
    void nanIsRejectedWhenThePolicySaysSo() throws Exception {
        OneInputStreamOperatorTestHarness<Tuple2<Long, float[]>, Long> h = Harnesses.open(
                mlpSpec(), BatchPolicy.builder().maxBatchSize(4).rejectNaN(true).build(), FEATURES);
        harness = h;
        float[] nan = new float[8];
        nan[3] = Float.NaN;
        h.processElement(Tuple2.of(1L, nan), 1);
        h.processElement(Tuple2.of(2L, new float[8]), 2);
        h.endInput();
        assertThat(h.extractOutputValues()).containsExactly(2L);
        assertThat(Harnesses.failed(h, FEATURES))
                .extracting(f -> f.reason)
                .containsExactly("Input 'x' holds NaN and NaN is rejected");
    }

    @Test
    void aRunThatFailsIsSplitUntilTheFailingRecordsAreIsolated() throws Exception {
        OnnxInferenceSpec<Long, String> spec = OnnxInference.<Long>builder(
                        TestModels.writeGather(dir.resolve("g.onnx")).toString())
                .encoder((idx, row) -> row.put("idx", new long[] {idx}))
                .decoder((idx, out) -> idx + "=" + out.floats("row")[0], Types.STRING)
                .build();
        OneInputStreamOperatorTestHarness<Long, String> h =
                Harnesses.open(spec, BatchPolicy.builder().maxBatchSize(8).build(), Types.LONG);
        harness = h;
        long[] indices = {0, 1, 99, 3, 4, -50, 6, 7};
        for (long idx : indices) {
            h.processElement(idx, idx);
        }
        // the full batch ran (and failed) at the 8th record
        assertThat(h.extractOutputValues()).containsExactly("0=0.0", "1=10.0", "3=30.0", "4=40.0", "6=60.0", "7=70.0");
        List<FailedRecord<Long>> failed = Harnesses.failed(h, Types.LONG);
        assertThat(failed).extracting(f -> f.record).containsExactly(99L, -50L);
        assertThat(failed.get(0).reason)
                .startsWith("ONNX Runtime failed on this record:")
                .contains("out of");
        assertThat(failed.get(0).errorType).isEqualTo(OrtException.class.getName());
    }

    @Test
    void decoderFailureSendsOnlyThatRecordToFailedRecords() throws Exception {
        OnnxInferenceSpec<Tuple2<Long, float[]>, Long> spec = OnnxInference.<Tuple2<Long, float[]>>builder(
                        new TestModels.Mlp(8, 8, 2)
                                .writeTo(dir.resolve("m.onnx"))
                                .toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder(
                        (r, out) -> {
                            if (r.f0 == 2) {
                                throw new IllegalStateException("no score for 2");
                            }
                            return r.f0;
                        },
                        Types.LONG)
                .build();
        OneInputStreamOperatorTestHarness<Tuple2<Long, float[]>, Long> h = Harnesses.open(spec, FOUR, FEATURES);
        harness = h;
        for (long id = 1; id <= 3; id++) {
            h.processElement(Tuple2.of(id, new float[8]), id);
        }
        h.endInput();
        assertThat(h.extractOutputValues()).containsExactly(1L, 3L);
        assertThat(Harnesses.failed(h, FEATURES).stream().map(f -> f.reason).collect(Collectors.toList()))
                .containsExactly("no score for 2");
    }
}
