package io.flinkonnx.flink.text;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.text.testing.TextModels;
import io.flinkonnx.flink.text.testing.TextReference;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Any string, surrogates, control characters, empty, whitespace and 100k characters included, either encodes to
 * exactly the ids DJL's tokenizer gives directly (within the vocabulary and {@code maxLength}, opened by {@code
 * [CLS]} and closed by {@code [SEP]}) or is refused with a {@link RecordConversionException}: never another
 * exception, never a crash of the native tokenizer. Tries: {@code jqwik.tries.default} (junit-platform.properties).
 */
class TextEncoderPropertyTest {
    private static final int MAX_LENGTH = 64;

    private static Path dir;
    private static RecordEncoder<String> encoder;
    private static RecordInputs row;
    private static TextReference reference;
    private static final AtomicInteger REFUSED = new AtomicInteger();
    private static final AtomicInteger ENCODED = new AtomicInteger();

    @BeforeContainer
    static void bind() throws Exception {
        dir = Files.createTempDirectory("flink-onnx-text-property");
        Path model = TextModels.writeEncoder(dir.resolve("encoder.onnx"));
        Path tokenizer = TextModels.writeTokenizer(dir.resolve("tokenizer.json"));
        ModelSignature signature;
        try (LocalModel local = ModelSource.of(model.toString()).fetch()) {
            signature = local.signature().orElseThrow();
        }
        encoder = TextEncoder.forStrings(tokenizer.toString())
                .maxLength(MAX_LENGTH)
                .build()
                .bind(signature, model.toString());
        row = new RecordInputs(model.toString(), signature.inputs());
        reference = new TextReference(model, tokenizer, MAX_LENGTH);
    }

    @AfterContainer
    static void close() throws Exception {
        System.out.printf("TextEncoderPropertyTest: %d texts encoded, %d refused%n", ENCODED.get(), REFUSED.get());
        ((AutoCloseable) encoder).close();
        reference.close();
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder())
                    .forEach(p -> p.toFile().delete());
        }
    }

    @Provide
    Arbitrary<String> texts() {
        Arbitrary<String> words = Arbitraries.of("good", "Movie", "late,", "refund!", "flink", "zebra", "42", "café")
                .list()
                .ofMaxSize(120)
                .map(w -> String.join(" ", w));
        Arbitrary<String> anyChars = Arbitraries.strings().all().ofMaxLength(40);
        Arbitrary<String> surrogates = Arbitraries.strings()
                .withCharRange('\uD800', '\uDFFF')
                .withChars("ab ")
                .ofMaxLength(12);
        Arbitrary<String> blank =
                Arbitraries.strings().withChars(" \t\n\r\u0000\u0001\u200B").ofMaxLength(8);
        Arbitrary<String> huge =
                Arbitraries.integers().between(10_000, 100_000).map(n -> "flink ".repeat(n / 6) + "\uD83D\uDE00");
        return Arbitraries.frequencyOf(
                        net.jqwik.api.Tuple.of(4, words),
                        net.jqwik.api.Tuple.of(3, anyChars),
                        net.jqwik.api.Tuple.of(2, surrogates),
                        net.jqwik.api.Tuple.of(1, blank),
                        net.jqwik.api.Tuple.of(1, huge))
                .injectNull(0.03);
    }

    @Property
    void anyStringEncodesToTheTokenizersOwnIdsOrIsRefusedWithAReason(@ForAll("texts") String text) throws Exception {
        row.reset();
        try {
            encoder.encode(text, row);
        } catch (RecordConversionException refused) {
            REFUSED.incrementAndGet();
            assertThat(refused.getMessage()).startsWith("The text ");
            boolean valid = text != null && !text.isEmpty() && validUtf16(text);
            if (valid) {
                // only a text of special tokens alone is refused
                assertThat(reference.ids(text)).containsOnly(2L, 3L);
            }
            return;
        }
        ENCODED.incrementAndGet();
        long[] ids = (long[]) row.values(0);
        assertThat(ids.length).isBetween(3, MAX_LENGTH);
        assertThat(ids[0]).isEqualTo(2L);
        assertThat(ids[ids.length - 1]).isEqualTo(3L);
        assertThat(java.util.Arrays.stream(ids).min().getAsLong()).isNotNegative();
        assertThat(java.util.Arrays.stream(ids).max().getAsLong()).isLessThan(TextModels.vocabularySize());
        assertThat(ids).containsExactly(reference.ids(text));
        assertThat((long[]) row.values(1)).hasSize(ids.length).containsOnly(1L);
        assertThat((long[]) row.values(2)).hasSize(ids.length).containsOnly(0L);
    }

    private static boolean validUtf16(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return false;
            }
        }
        return true;
    }
}
