package io.flinkonnx.flink.text;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.text.testing.TextModels;
import io.flinkonnx.flink.text.testing.TextReference;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The text encoder and decoders in the batching operator (Flink's operator harness), against {@link TextReference}:
 * DJL's tokenizer used directly, a plain ORT session run on each text alone, pooling written in the test.
 */
class TextEncoderTest {
    static final TypeInformation<Doc> DOC = TypeInformation.of(Doc.class);
    static final TypeInformation<Tuple2<Integer, float[]>> EMBEDDED =
            Types.TUPLE(Types.INT, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    /** Eight records a batch; no length buckets, so short and long texts share one padded run. */
    static final BatchPolicy ONE_RUN = BatchPolicy.builder()
            .maxBatchSize(8)
            .maxBatchDelay(Duration.ofSeconds(10))
            .bucketByLength(false)
            .build();

    static final List<String> TEXTS = List.of(
            "Good movie.",
            "The service was very late and the order was terrible, I want a refund please!",
            "flink streams text",
            "I love this film but not the ending; the model is ok",
            "Thanks for the fast help",
            "zqx 42",
            "Not bad. Not great. It was a movie, and that is that; we hate late orders and we love fast ones");

    @TempDir
    Path dir;

    Path model;
    Path tokenizer;
    private final List<OneInputStreamOperatorTestHarness<?, ?>> harnesses = new ArrayList<>();

    @BeforeEach
    void write() throws Exception {
        model = TextModels.writeEncoder(dir.resolve("encoder.onnx"));
        tokenizer = TextModels.writeTokenizer(dir.resolve("tokenizer.json"));
    }

    @AfterEach
    void close() throws Exception {
        for (OneInputStreamOperatorTestHarness<?, ?> h : harnesses) {
            h.close();
        }
        assertThat(SessionStats.open()).isZero();
    }

    private OnnxInferenceSpec<Doc, Tuple2<Integer, float[]>> embeddings(
            Path model, TextEncoder<Doc> encoder, SentenceEmbedding embedding) {
        return OnnxInference.<Doc>builder(model.toString())
                .encoder(encoder)
                .decoder((doc, out) -> Tuple2.of(doc.id, embedding.embed(out)), EMBEDDED)
                .build();
    }

    private <OUT> OneInputStreamOperatorTestHarness<Doc, OUT> open(OnnxInferenceSpec<Doc, OUT> spec, BatchPolicy policy)
            throws Exception {
        OneInputStreamOperatorTestHarness<Doc, OUT> h = Harnesses.open(spec, policy, DOC);
        harnesses.add(h);
        return h;
    }

    private static Map<Integer, float[]> byId(List<Tuple2<Integer, float[]>> results) {
        Map<Integer, float[]> m = new TreeMap<>();
        results.forEach(t -> m.put(t.f0, t.f1));
        return m;
    }

    private static void score(OneInputStreamOperatorTestHarness<Doc, ?> h, List<Doc> docs) throws Exception {
        long t = 0;
        for (Doc d : docs) {
            h.processElement(d, t++);
        }
        h.endInput();
    }

    private static List<Doc> docs(List<String> texts) {
        List<Doc> docs = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            docs.add(new Doc(i, texts.get(i)));
        }
        return docs;
    }

    @Test
    void meanPooledEmbeddingsEqualTheReferenceAndTheSameTextAloneInAPaddedBatch() throws Exception {
        TextEncoder<Doc> encoder =
                TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text).build();
        SentenceEmbedding embedding = SentenceEmbedding.mean().normalized();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> batched =
                open(embeddings(model, encoder, embedding), ONE_RUN);
        score(batched, docs(TEXTS));
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> alone = open(
                embeddings(model, encoder, embedding),
                BatchPolicy.builder().maxBatchSize(1).build());
        score(alone, docs(TEXTS));

        Map<Integer, float[]> inBatch = byId(batched.extractOutputValues());
        Map<Integer, float[]> single = byId(alone.extractOutputValues());
        assertThat(inBatch).hasSize(TEXTS.size());
        try (TextReference reference = new TextReference(model, tokenizer, TextEncoder.DEFAULT_MAX_LENGTH)) {
            for (int i = 0; i < TEXTS.size(); i++) {
                float[] expected = reference.meanEmbedding(TEXTS.get(i), true);
                assertThat(inBatch.get(i)).as(TEXTS.get(i)).containsExactly(expected, within(1e-5f));
                assertThat(inBatch.get(i)).as(TEXTS.get(i)).containsExactly(single.get(i), within(1e-6f));
            }
            // The texts differ in length by a factor of 8: the batch was padded, so the mask did its work.
            assertThat(reference.ids(TEXTS.get(6)).length).isGreaterThan(8 * reference.ids(TEXTS.get(5)).length / 2);
        }
    }

    @Test
    void clsPoolingTakesTheFirstTokensVector() throws Exception {
        TextEncoder<Doc> encoder =
                TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text).build();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> h =
                open(embeddings(model, encoder, SentenceEmbedding.cls()), ONE_RUN);
        score(h, docs(TEXTS));
        Map<Integer, float[]> results = byId(h.extractOutputValues());
        try (TextReference reference = new TextReference(model, tokenizer, TextEncoder.DEFAULT_MAX_LENGTH)) {
            for (int i = 0; i < TEXTS.size(); i++) {
                assertThat(results.get(i)).containsExactly(reference.clsEmbedding(TEXTS.get(i)), within(1e-5f));
            }
        }
    }

    @Test
    void badTextsAreDeadLettersWithTheirReasonWhileTheRestOfTheBatchScores() throws Exception {
        TextEncoder<Doc> encoder = TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                .maxLength(12)
                .truncation(Truncation.REFUSE)
                .build();
        List<Doc> docs = List.of(
                new Doc(0, "good movie"),
                new Doc(1, null),
                new Doc(2, ""),
                new Doc(3, "broken \uD83D text"), // a high surrogate without its low half
                new Doc(4, "\uDE00 starts with a low surrogate"),
                new Doc(5, " \t\n "),
                new Doc(6, "\u0001\u0002\u0003"),
                new Doc(7, "the service was late and the order was late and the film was bad"),
                new Doc(8, "thanks \uD83D\uDE00")); // a valid pair (an emoji, [UNK] to this vocabulary)
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> h =
                open(embeddings(model, encoder, SentenceEmbedding.mean()), ONE_RUN);
        score(h, docs);

        Map<Integer, float[]> scored = byId(h.extractOutputValues());
        assertThat(scored).containsOnlyKeys(0, 8);
        try (TextReference reference = new TextReference(model, tokenizer, 12)) {
            assertThat(scored.get(0)).containsExactly(reference.meanEmbedding("good movie", false), within(1e-5f));
            assertThat(scored.get(8))
                    .containsExactly(reference.meanEmbedding("thanks \uD83D\uDE00", false), within(1e-5f));
        }
        Map<Integer, String> reasons = new TreeMap<>();
        for (FailedRecord<Doc> f : Harnesses.failed(h, DOC)) {
            reasons.put(f.record.id, f.reason);
        }
        assertThat(reasons).containsOnlyKeys(1, 2, 3, 4, 5, 6, 7);
        assertThat(reasons.get(1)).isEqualTo("The text is null: there is nothing to tokenize");
        assertThat(reasons.get(2)).isEqualTo("The text is empty: there is nothing to tokenize");
        assertThat(reasons.get(3)).startsWith("The text is not valid UTF-16: an unpaired surrogate U+D83D at char 7");
        assertThat(reasons.get(4)).startsWith("The text is not valid UTF-16: an unpaired surrogate U+DE00 at char 0");
        assertThat(reasons.get(5)).startsWith("The text tokenizes to no tokens but the special ones (2 token(s))");
        assertThat(reasons.get(6)).startsWith("The text tokenizes to no tokens but the special ones");
        assertThat(reasons.get(7))
                .isEqualTo("The text is 16 tokens long, more than maxLength 12, and truncation is REFUSE");
    }

    @Test
    void textsOverMaxLengthAreTruncatedKeepingTheClosingSpecialToken() throws Exception {
        String longText = String.join(" ", java.util.Collections.nCopies(40, "great film"));
        TextEncoder<Doc> encoder = TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                .maxLength(16)
                .build();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> h =
                open(embeddings(model, encoder, SentenceEmbedding.mean()), ONE_RUN);
        score(h, List.of(new Doc(0, longText), new Doc(1, "ok")));
        Map<Integer, float[]> scored = byId(h.extractOutputValues());
        try (TextReference reference = new TextReference(model, tokenizer, 16)) {
            long[] ids = reference.ids(longText);
            assertThat(ids).hasSize(16);
            assertThat(ids[0]).isEqualTo(2L); // [CLS]
            assertThat(ids[15]).isEqualTo(3L); // [SEP]
            assertThat(scored.get(0)).containsExactly(reference.meanEmbedding(longText, false), within(1e-5f));
            assertThat(scored.get(1)).containsExactly(reference.meanEmbedding("ok", false), within(1e-5f));
        }
    }

    @Test
    void aHugeTextIsCutBeforeTokenizingToTheSameTokensOrRefusedByItsLength() throws Exception {
        // 4 MB of text for 16 tokens: cut to 64 characters per token before the tokenizer sees it
        String huge = String.join(" ", java.util.Collections.nCopies(400_000, "great film"));
        TextEncoder<Doc> truncating = TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                .maxLength(16)
                .build();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> h =
                open(embeddings(model, truncating, SentenceEmbedding.mean()), ONE_RUN);
        score(h, List.of(new Doc(0, huge), new Doc(1, "ok")));
        Map<Integer, float[]> scored = byId(h.extractOutputValues());
        try (TextReference reference = new TextReference(model, tokenizer, 16)) {
            assertThat(scored.get(0)).containsExactly(reference.meanEmbedding(huge, false), within(1e-5f));
            assertThat(scored.get(1)).containsExactly(reference.meanEmbedding("ok", false), within(1e-5f));
        }

        TextEncoder<Doc> refusing = TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                .maxLength(16)
                .truncation(Truncation.REFUSE)
                .build();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> r =
                open(embeddings(model, refusing, SentenceEmbedding.mean()), ONE_RUN);
        score(r, List.of(new Doc(0, huge), new Doc(1, "ok")));
        assertThat(byId(r.extractOutputValues())).containsOnlyKeys(1);
        assertThat(Harnesses.failed(r, DOC)).singleElement().satisfies(f -> assertThat(f.reason)
                .isEqualTo("The text is " + huge.length() + " characters long, more than 64 per token of maxLength"
                        + " 16, and truncation is REFUSE"));
    }

    @Test
    void int32TokenInputsScoreAsTheirInt64Twin() throws Exception {
        Path int32 = TextModels.writeInt32Encoder(dir.resolve("int32.onnx"));
        TextEncoder<Doc> encoder =
                TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text).build();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> h =
                open(embeddings(int32, encoder, SentenceEmbedding.mean()), ONE_RUN);
        score(h, docs(TEXTS));
        Map<Integer, float[]> scored = byId(h.extractOutputValues());
        try (TextReference reference = new TextReference(model, tokenizer, TextEncoder.DEFAULT_MAX_LENGTH)) {
            for (int i = 0; i < TEXTS.size(); i++) {
                assertThat(scored.get(i)).containsExactly(reference.meanEmbedding(TEXTS.get(i), false), within(1e-5f));
            }
        }
    }

    @Test
    void pairTextsAreTokenizedAsTwoSegments() throws Exception {
        TextEncoder<Doc> encoder = TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                .pairText(d -> "is it good?")
                .build();
        OneInputStreamOperatorTestHarness<Doc, Tuple2<Integer, float[]>> h =
                open(embeddings(model, encoder, SentenceEmbedding.cls()), ONE_RUN);
        score(h, docs(TEXTS));
        Map<Integer, float[]> scored = byId(h.extractOutputValues());
        try (TextReference reference = new TextReference(model, tokenizer, TextEncoder.DEFAULT_MAX_LENGTH)) {
            for (int i = 0; i < TEXTS.size(); i++) {
                float[] states = reference.run(TEXTS.get(i), "is it good?", "last_hidden_state");
                float[] cls = java.util.Arrays.copyOf(states, TextModels.HIDDEN);
                assertThat(scored.get(i)).containsExactly(cls, within(1e-5f));
                // the second segment changes the result: the type ids reached the model
                assertThat(scored.get(i)).isNotEqualTo(reference.clsEmbedding(TEXTS.get(i)));
            }
        }
    }

    @Test
    void theClassifierNamesTheTopLabelFromConfigJson() throws Exception {
        Path classifier = TextModels.writeClassifier(dir.resolve("classifier.onnx"));
        Path config = TextModels.writeConfig(dir.resolve("config.json"));
        OnnxInferenceSpec<Doc, TextLabel> spec = OnnxInference.<Doc>builder(classifier.toString())
                .encoder(TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                        .build())
                .decoder(TextClassifier.fromConfig(config.toString()).decoder(), Types.POJO(TextLabel.class))
                .build();
        OneInputStreamOperatorTestHarness<Doc, TextLabel> h = open(spec, ONE_RUN);
        score(h, docs(TEXTS));
        List<TextLabel> labels = h.extractOutputValues();
        assertThat(labels).hasSize(TEXTS.size());
        try (TextReference reference = new TextReference(classifier, tokenizer, TextEncoder.DEFAULT_MAX_LENGTH)) {
            for (int i = 0; i < TEXTS.size(); i++) {
                Object[] expected = reference.topLabel(TEXTS.get(i));
                assertThat(labels.get(i).label).isEqualTo(expected[0]);
                assertThat(labels.get(i).labelId).isEqualTo(expected[1]);
                assertThat(labels.get(i).score).isCloseTo((Float) expected[2], within(1e-5f));
            }
        }
        assertThat(labels).extracting(l -> l.label).containsAnyElementsOf(TextModels.LABELS);
        assertThat(labels.stream().map(l -> l.label).distinct().count())
                .as("the test texts reach more than one label")
                .isGreaterThan(1);
    }

    @Test
    void aTokenizerWhoseVocabularyOutgrowsTheModelsEmbeddingIsRefusedAtOpen() throws Exception {
        int rows = TextModels.vocabularySize() - 10;
        Path small = TextModels.writeEncoder(dir.resolve("small-vocab.onnx"), rows);
        OnnxInferenceSpec<Doc, Tuple2<Integer, float[]>> spec = embeddings(
                small,
                TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text).build(),
                SentenceEmbedding.mean());
        assertThatThrownBy(() -> open(spec, ONE_RUN))
                .hasMessageContaining("The tokenizer " + tokenizer + " does not fit model " + small)
                .hasMessageContaining("its vocabulary has " + TextModels.vocabularySize() + " tokens")
                .hasMessageContaining("has " + rows + " rows");
    }

    @Test
    void aModelWithoutTheIdInputIsRefusedAtOpenNamingItsInputs() throws Exception {
        OnnxInferenceSpec<Doc, Tuple2<Integer, float[]>> spec = embeddings(
                model,
                TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                        .inputNames("ids", "attention_mask", "token_type_ids")
                        .build(),
                SentenceEmbedding.mean());
        assertThatThrownBy(() -> open(spec, ONE_RUN))
                .hasMessageContaining("has no input 'ids' for the token ids of " + tokenizer)
                .hasMessageContaining("[input_ids, attention_mask, token_type_ids]");
    }

    @Test
    void aMissingTokenizerFileIsRefusedAtOpenNamingIt() throws Exception {
        Path missing = dir.resolve("nope/tokenizer.json");
        OnnxInferenceSpec<Doc, Tuple2<Integer, float[]>> spec = embeddings(
                model, TextEncoder.<Doc>builder(missing.toString(), d -> d.text).build(), SentenceEmbedding.mean());
        assertThatThrownBy(() -> open(spec, ONE_RUN))
                .hasMessageContaining("The tokenizer " + missing + " does not exist");
    }

    private static org.assertj.core.data.Offset<Float> within(float tolerance) {
        return org.assertj.core.data.Offset.offset(tolerance);
    }
}
