package io.flinkonnx.benchmarks;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.flinkonnx.examples.TextMessages;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.ModelBound;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.text.TextEncoder;
import io.flinkonnx.model.ModelSignature;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * The text example's tokenizer and messages ({@code examples}' {@code models/text/tokenizer.json},
 * {@link TextMessages}: most texts 1-15 words, every 20th 40-150 words, cut at max length 128) through
 * {@link RaggedBenchmark}'s BERT-like encoder (2 layers, hidden 128; the example's own model, hidden 8, is too
 * small for sequence length to matter), in the batching operator on one slot. Two figures:
 *
 * <ul>
 *   <li>{@code text_tokenize_share}: the time spent inside the {@link TextEncoder} (tokenizing and filling the
 *       row) over the task's time per record (one slot: source, encoder, runs and sink in one thread), from the
 *       first record's encoding to the last's, same process.
 *   <li>{@code text_bucketed_over_padded}: records/s of the library's default (each record its own length, length
 *       buckets, attention mask) over an encoder written here that pads ids and mask to the max length (128), as
 *       a tokenizer with {@code padding="max_length"} does; rates over the same steady window. Best of two,
 *       alternating.
 * </ul>
 *
 * <pre>
 * ./mvnw -q -B -pl benchmarks exec:exec -Dexec.benchArgs=--text
 * </pre>
 */
public final class TextBenchmark {
    static final int MAX_LENGTH = 128;

    /** Time inside the timed encoder, and the first start and last end of an encode call (nanoTime). */
    static final AtomicLong ENCODE_NANOS = new AtomicLong();

    static final AtomicLong FIRST_START = new AtomicLong(Long.MAX_VALUE);
    static final AtomicLong LAST_END = new AtomicLong();

    private TextBenchmark() {}

    /** {tokenize share, bucketed rec/s, padded rec/s}. */
    static double[] measure(Path dir, int records, int batch) throws Exception {
        Path model = RaggedBenchmark.writeBertLike(dir.resolve("bert-like.onnx"));
        Path tokenizer = dir.resolve("tokenizer.json");
        try (InputStream in = TextMessages.class.getResourceAsStream("/models/text/tokenizer.json")) {
            Files.copy(in, tokenizer);
        }
        double bucketed = 0;
        double padded = 0;
        double share = 0;
        for (int round = 0; round < 2; round++) {
            double[] b = run(model, records, batch, new Timed(textEncoder(tokenizer), "length buckets"));
            if (b[0] > bucketed) {
                bucketed = b[0];
                share = b[1];
            }
            padded = Math.max(
                    padded, run(model, records, batch, new Timed(new PaddedToMax(tokenizer.toString()), "padded"))[0]);
        }
        double[] r = {share, bucketed, padded};
        System.out.println("  " + note(r, batch));
        return r;
    }

    /** The run's line in the report: {share, bucketed rec/s, padded rec/s} from {@link #measure}. */
    static String note(double[] r, int batch) {
        return String.format(
                Locale.ROOT,
                "the text example's messages (max length %d) on a BERT-like encoder (%d layers, hidden %d), batch %d:"
                        + " length buckets %,.1f rec/s (the text encoder %.1f%% of the time per record), padded to"
                        + " max length %,.1f rec/s (ratio %.2f)",
                MAX_LENGTH,
                RaggedBenchmark.LAYERS,
                RaggedBenchmark.HIDDEN,
                batch,
                r[1],
                r[0] * 100,
                r[2],
                r[1] / r[2]);
    }

    static TextEncoder<String> textEncoder(Path tokenizer) {
        return TextEncoder.forStrings(tokenizer.toString())
                .maxLength(MAX_LENGTH)
                .build();
    }

    /**
     * {records/s, the encoder's share of the time}, both over the steady window from the first record's encoding
     * to the last's (the job's start-up and the last batch's run left out, the same for both encoders).
     */
    private static double[] run(Path model, int records, int batch, Timed encoder) throws Exception {
        ENCODE_NANOS.set(0);
        FIRST_START.set(Long.MAX_VALUE);
        LAST_END.set(0);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, new Configuration());
        OnnxInferenceSpec<String, Float> spec = OnnxInference.<String>builder(model.toString())
                .encoder(encoder)
                .decoder((text, out) -> out.floats("pooled")[0], Types.FLOAT)
                .build();
        OnnxInference.batched(
                        env.fromSequence(0, records - 1).map(i -> TextMessages.text((int) (long) i)),
                        spec,
                        BatchPolicy.builder()
                                .maxBatchSize(batch)
                                .maxBatchDelay(Duration.ofMillis(50))
                                .build())
                .sinkTo(new DiscardingSink<>());
        env.execute("text, " + encoder);
        double window = LAST_END.get() - FIRST_START.get();
        return new double[] {records / (window / 1e9), ENCODE_NANOS.get() / window};
    }

    /** An encoder, timed: each bound encode call adds its time to {@link #ENCODE_NANOS}. */
    static final class Timed implements RecordEncoder<String>, ModelBound<RecordEncoder<String>> {
        private static final long serialVersionUID = 1L;
        private final ModelBound<RecordEncoder<String>> encoder;
        private final String name;

        Timed(ModelBound<RecordEncoder<String>> encoder, String name) {
            this.encoder = encoder;
            this.name = name;
        }

        @Override
        public RecordEncoder<String> bind(ModelSignature signature, String model) throws Exception {
            return new Bound(encoder.bind(signature, model));
        }

        @Override
        public void encode(String record, InputRow row) {
            throw new IllegalStateException("bound by the operator");
        }

        @Override
        public String toString() {
            return name;
        }

        private static final class Bound implements RecordEncoder<String>, AutoCloseable {
            private static final long serialVersionUID = 1L;
            private final transient RecordEncoder<String> bound;

            Bound(RecordEncoder<String> bound) {
                this.bound = bound;
            }

            @Override
            public void encode(String record, InputRow row) throws Exception {
                long start = System.nanoTime();
                try {
                    bound.encode(record, row);
                } finally {
                    long end = System.nanoTime();
                    ENCODE_NANOS.addAndGet(end - start);
                    FIRST_START.accumulateAndGet(start, Math::min);
                    LAST_END.accumulateAndGet(end, Math::max);
                }
            }

            @Override
            public void close() throws Exception {
                if (bound instanceof AutoCloseable) {
                    ((AutoCloseable) bound).close();
                }
            }
        }
    }

    /**
     * The baseline: DJL's tokenizer padding ids and mask to {@link #MAX_LENGTH} (truncating longer texts), so
     * every record is {@code [1, 128]} and every run {@code [batch, 128]}.
     */
    static final class PaddedToMax implements RecordEncoder<String>, ModelBound<RecordEncoder<String>> {
        private static final long serialVersionUID = 1L;
        private final String tokenizer;

        PaddedToMax(String tokenizer) {
            this.tokenizer = tokenizer;
        }

        @Override
        public RecordEncoder<String> bind(ModelSignature signature, String model) throws IOException {
            return new Bound(HuggingFaceTokenizer.builder()
                    .optTokenizerPath(Path.of(tokenizer))
                    .optAddSpecialTokens(true)
                    .optTruncation(true)
                    .optPadding(true)
                    .optPadToMaxLength()
                    .optMaxLength(MAX_LENGTH)
                    .build());
        }

        @Override
        public void encode(String record, InputRow row) {
            throw new IllegalStateException("bound by the operator");
        }

        private static final class Bound implements RecordEncoder<String>, AutoCloseable {
            private static final long serialVersionUID = 1L;
            private final transient HuggingFaceTokenizer tokenizer;

            Bound(HuggingFaceTokenizer tokenizer) {
                this.tokenizer = tokenizer;
            }

            @Override
            public void encode(String record, InputRow row) {
                Encoding e = tokenizer.encode(record);
                if (e.getIds().length != MAX_LENGTH) {
                    throw new IllegalStateException("padded to " + e.getIds().length + ", not " + MAX_LENGTH);
                }
                row.put("input_ids", e.getIds());
                row.put("attention_mask", e.getAttentionMask());
            }

            @Override
            public void close() {
                tokenizer.close();
            }
        }
    }
}
