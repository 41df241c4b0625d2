package io.flinkonnx.flink.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ModelLoadException;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.providers.SessionSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Models carrying their pre-processing as ONNX Runtime Extensions custom operators (domain
 * {@code ai.onnx.contrib}) load when the settings ask for the extensions, take STRING inputs straight from
 * records, and score like an independent computation of the same pre-processing.
 */
class OnnxRuntimeExtensionsTest {
    private static final SessionSettings EXTENSIONS =
            SessionSettings.builder().onnxRuntimeExtensions(true).build();

    @TempDir
    Path dir;

    @AfterEach
    void noSessionLeaks() {
        assertThat(SessionStats.open()).isZero();
    }

    /** What the model computes, without ORT: code points of the text once each run of digits is one '#'. */
    private static float reference(String text) {
        String masked = text.replaceAll("[0-9]+", "#");
        return masked.codePointCount(0, masked.length());
    }

    private OnnxInferenceSpec<String, Tuple2<String, Float>> spec(SessionSettings settings) throws Exception {
        return OnnxInference.<String>builder(TestModels.writeDigitRunLength(dir.resolve("digits.onnx"))
                        .toString())
                .sessionSettings(settings)
                .encoder((text, row) -> row.put("text", text))
                .decoder(
                        (text, out) -> Tuple2.of(text, out.floats("length")[0]), Types.TUPLE(Types.STRING, Types.FLOAT))
                .build();
    }

    @Test
    void aCustomOpModelScoresThroughTheBatchingOperatorLikeAnIndependentComputation() throws Exception {
        List<String> texts = List.of(
                "order 12345 shipped",
                "",
                "no digits here",
                "a1b22c333",
                "Größe 42, Preis 9,99 €",
                "2026-12-04",
                "тест 7",
                "x");
        OneInputStreamOperatorTestHarness<String, Tuple2<String, Float>> harness = Harnesses.open(
                spec(EXTENSIONS),
                BatchPolicy.builder()
                        .maxBatchSize(3)
                        .maxBatchDelay(Duration.ofSeconds(1))
                        .build(),
                Types.STRING);
        try {
            for (int i = 0; i < texts.size(); i++) {
                harness.processElement(texts.get(i), i);
            }
            harness.endInput();
            List<Tuple2<String, Float>> expected = new ArrayList<>();
            texts.forEach(t -> expected.add(Tuple2.of(t, reference(t))));
            assertThat(harness.extractOutputValues()).containsExactlyElementsOf(expected);
            assertThat(Harnesses.failed(harness, Types.STRING)).isEmpty();
        } finally {
            harness.close();
        }
    }

    @Test
    void aCustomOpModelWithoutTheExtensionsFailsAtOpenSayingToEnableThem() throws Exception {
        OnnxInferenceSpec<String, Tuple2<String, Float>> spec = spec(SessionSettings.defaults());
        assertThatThrownBy(() -> Runners.open(spec))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("could not load model " + spec.model().uri())
                .hasMessageContaining("The model uses custom operator ai.onnx.contrib:StringRegexReplace"
                        + " (domain 'ai.onnx.contrib'), which plain ONNX Runtime does not have: enable the ONNX Runtime"
                        + " Extensions (SessionSettings.builder().onnxRuntimeExtensions(true), or 'extensions' ="
                        + " 'true' in SQL) with com.microsoft.onnxruntime:onnxruntime-extensions:0.13.0 on the"
                        + " classpath");
    }

    @Test
    void sessionsWithAndWithoutTheExtensionsAreNeverShared() throws Exception {
        Path model = TestModels.writeStringLabelEncoder(dir.resolve("labels.onnx"));
        List<InferenceRunner<String, Long>> runners = new ArrayList<>();
        try {
            for (SessionSettings settings : List.of(SessionSettings.defaults(), EXTENSIONS, EXTENSIONS)) {
                runners.add(Runners.open(
                        OnnxInference.<String>builder(model.toString())
                                .sessionSettings(settings)
                                .encoder((s, row) -> row.put("category", s))
                                .decoder((s, out) -> out.longs("code")[0], Types.LONG)
                                .build(),
                        "one-slot"));
            }
            // one session without the custom-op library, one with it, shared by the two runners that ask for it
            assertThat(SessionStats.open()).isEqualTo(2);
            assertThat(runners.get(1).session()).isSameAs(runners.get(2).session());
            assertThat(runners.get(0).session()).isNotSameAs(runners.get(1).session());
            for (InferenceRunner<String, Long> runner : runners) {
                assertThat(runner.infer("wire")).isEqualTo(1L);
            }
        } finally {
            for (InferenceRunner<String, Long> runner : runners) {
                runner.close();
            }
        }
    }

    @Test
    void charactersOutsideTheBmpReachNativeOperatorsAsTwoSurrogateCodes() throws Exception {
        // ORT's Java API hands strings to native code in modified UTF-8: an emoji arrives as two 3-byte
        // surrogate codes, which StringLength counts as two characters (docs/models-and-providers.md says so).
        try (InferenceRunner<String, Tuple2<String, Float>> runner = Runners.open(spec(EXTENSIONS))) {
            assertThat(runner.infer("ok \uD83D\uDE00 7").f1).isEqualTo(reference("ok \uD83D\uDE00 7") + 1);
            assertThat(runner.infer("ok é 7").f1).isEqualTo(reference("ok é 7"));
        }
    }
}
