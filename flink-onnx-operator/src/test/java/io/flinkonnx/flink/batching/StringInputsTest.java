package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** STRING inputs through the batching operator: batched as scored alone, bad strings dead-lettered. */
class StringInputsTest {
    private static final TypeInformation<String[]> WORDS = Types.OBJECT_ARRAY(Types.STRING);

    @TempDir
    Path dir;

    @AfterEach
    void noSessionLeaks() {
        assertThat(SessionStats.open()).isZero();
    }

    /** The word-score model's arithmetic, without ORT. */
    private static float reference(String[] words) {
        Map<String, Float> points = Map.of("card", 1f, "wire", 2f, "cash", 3f, "crypto", 4f);
        float sum = 0;
        for (String w : words) {
            sum += points.getOrDefault(w, -1f);
        }
        return sum;
    }

    @Test
    void stringRecordsOfManyLengthsBatchedScoreAsEachAloneAndAreNeverPaddedWithoutAMask() throws Exception {
        // padWithoutMask asks for padding, but "" scores -1 in this model: STRING inputs must group by shape instead
        OnnxInferenceSpec<String[], Float> spec = OnnxInference.<String[]>builder(
                        TestModels.writeWordScore(dir.resolve("words.onnx")).toString())
                .encoder((words, row) -> row.put("words", words))
                .decoder((words, out) -> out.floats("score")[0], Types.FLOAT)
                .build();
        List<String[]> records = new ArrayList<>();
        String[] vocabulary = {"card", "wire", "cash", "crypto", "", "unknown", "Wire", "crypto€"};
        for (int r = 0; r < 40; r++) {
            String[] words = new String[1 + (r * 7) % 5];
            for (int w = 0; w < words.length; w++) {
                words[w] = vocabulary[(r * 3 + w * 5) % vocabulary.length];
            }
            records.add(words);
        }
        List<Float> alone = new ArrayList<>();
        try (InferenceRunner<String[], Float> runner = Runners.open(spec)) {
            for (String[] words : records) {
                alone.add(runner.infer(words));
            }
        }
        OneInputStreamOperatorTestHarness<String[], Float> harness = Harnesses.open(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(16)
                        .maxBatchDelay(Duration.ofSeconds(1))
                        .padWithoutMask(true)
                        .build(),
                WORDS);
        try {
            for (int i = 0; i < records.size(); i++) {
                harness.processElement(records.get(i), i);
            }
            harness.endInput();
            assertThat(harness.extractOutputValues()).containsExactlyElementsOf(alone);
        } finally {
            harness.close();
        }
        List<Float> expected = new ArrayList<>();
        records.forEach(words -> expected.add(reference(words)));
        assertThat(alone).containsExactlyElementsOf(expected);
    }

    @Test
    void aNullStringAnUnpairedSurrogateAndAWrongTypeAreDeadLetteredAndTheRestOfTheBatchScores() throws Exception {
        TypeInformation<Tuple2<Integer, String>> type = Types.TUPLE(Types.INT, Types.STRING);
        OnnxInferenceSpec<Tuple2<Integer, String>, Tuple2<Integer, Long>> spec =
                OnnxInference.<Tuple2<Integer, String>>builder(
                                TestModels.writeStringLabelEncoder(dir.resolve("labels.onnx"))
                                        .toString())
                        .encoder((r, row) -> {
                            if (r.f0 == 4) {
                                row.put("category", r.f1.getBytes(java.nio.charset.StandardCharsets.UTF_8));
                            } else {
                                row.put("category", r.f0 == 2 ? new String[] {null} : new String[] {r.f1});
                            }
                        })
                        .decoder((r, out) -> Tuple2.of(r.f0, out.longs("code")[0]), Types.TUPLE(Types.INT, Types.LONG))
                        .build();
        OneInputStreamOperatorTestHarness<Tuple2<Integer, String>, Tuple2<Integer, Long>> harness =
                Harnesses.open(spec, BatchPolicy.builder().maxBatchSize(8).build(), type);
        try {
            harness.processElement(Tuple2.of(1, "wire"), 1);
            harness.processElement(Tuple2.of(2, "card"), 2); // the encoder gives a null string
            harness.processElement(Tuple2.of(3, "ca\uD800sh"), 3);
            harness.processElement(Tuple2.of(4, "cash"), 4); // the encoder gives bytes
            harness.processElement(Tuple2.of(5, "crypto"), 5);
            harness.processElement(Tuple2.of(6, "Crypto"), 6);
            harness.endInput();
            assertThat(harness.extractOutputValues())
                    .containsExactly(Tuple2.of(1, 1L), Tuple2.of(5, 3L), Tuple2.of(6, -1L));
            List<FailedRecord<Tuple2<Integer, String>>> failed = Harnesses.failed(harness, type);
            assertThat(failed).extracting(f -> f.record.f0).containsExactly(2, 3, 4);
            assertThat(failed)
                    .extracting(f -> f.reason)
                    .containsExactly(
                            "Input 'category' holds a null string at index 0; STRING inputs take text (an empty string"
                                    + " is text)",
                            "Input 'category' holds an unpaired UTF-16 surrogate (\\uD800) at char 2 of string 0: it is"
                                    + " not text and has no UTF-8 form",
                            "Input 'category' expects STRING values (String[]) but the record gave byte[]; values are"
                                    + " never cast");
        } finally {
            harness.close();
        }
    }
}
