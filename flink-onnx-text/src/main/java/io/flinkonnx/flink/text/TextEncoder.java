package io.flinkonnx.flink.text;

import static org.apache.flink.util.Preconditions.checkArgument;

import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.ModelBound;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.text.internal.TokenizingEncoder;
import io.flinkonnx.model.ModelSignature;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A {@link RecordEncoder} for text models: tokenizes a record's text with the model's Hugging Face
 * {@code tokenizer.json} and puts {@code input_ids}, {@code attention_mask} and {@code token_type_ids} (those the
 * model's inputs name; INT64 or INT32 as the model declares them). Each record keeps its own length: the batching
 * operator pads a batch's records under the attention mask, in length buckets, so a record scores the same alone
 * or beside longer ones.
 *
 * <pre>{@code
 * TextEncoder<Ticket> encoder = TextEncoder.builder("s3://models/minilm/tokenizer.json", Ticket::body)
 *         .maxLength(256)
 *         .truncation(Truncation.TRUNCATE)
 *         .build();
 * OnnxInferenceSpec<Ticket, float[]> spec = OnnxInference.<Ticket>builder("s3://models/minilm/model.onnx")
 *         .encoder(encoder)
 *         .decoder(SentenceEmbedding.mean().normalized().decoder(), Types.PRIMITIVE_ARRAY(Types.FLOAT))
 *         .build();
 * DataStream<float[]> embeddings = OnnxInference.batched(tickets, spec, BatchPolicy.defaults());
 * }</pre>
 *
 * <p>When the operator opens, the tokenizer is loaded once per scoring instance (it is native, not serializable,
 * and closed with the operator) and checked against the model: its id input must exist with a free sequence axis,
 * every model input must be one this encoder fills, and the tokenizer's vocabulary must fit the model's embedding
 * table (a token id at or above the rows of the table {@code input_ids} indexes is refused at open, naming both
 * files and both sizes).
 *
 * <p>Bad records become dead letters with the reason, the rest of the batch is scored: a null or empty text, a
 * text with an unpaired UTF-16 surrogate, a text that tokenizes to no tokens but the special ones, and, with
 * {@link Truncation#REFUSE}, a text longer than {@code maxLength} tokens.
 *
 * <p>DJL's tokenizer library is native (Rust): its jar carries it for Linux x86_64/aarch64, macOS (Apple silicon)
 * and Windows x86_64 and copies it into {@code DJL_CACHE_DIR} (default {@code ~/.djl.ai}) on first use; it never
 * needs the network for a {@code tokenizer.json} given by path.
 *
 * @param <IN> the record type
 */
@PublicEvolving
public final class TextEncoder<IN> implements RecordEncoder<IN>, ModelBound<RecordEncoder<IN>> {
    private static final long serialVersionUID = 1L;

    /** The default of {@link Builder#maxLength}: BERT's 512 tokens. */
    public static final int DEFAULT_MAX_LENGTH = 512;

    private final String tokenizer;
    private final TextExtractor<IN> text;
    private final TextExtractor<IN> pairText;
    private final int maxLength;
    private final Truncation truncation;
    private final String inputIds;
    private final String attentionMask;
    private final String tokenTypeIds;

    private TextEncoder(Builder<IN> b) {
        this.tokenizer = b.tokenizer;
        this.text = b.text;
        this.pairText = b.pairText;
        this.maxLength = b.maxLength;
        this.truncation = b.truncation;
        this.inputIds = b.inputIds;
        this.attentionMask = b.attentionMask;
        this.tokenTypeIds = b.tokenTypeIds;
    }

    /**
     * Starts a text encoder.
     *
     * @param <IN> the record type
     * @param tokenizerUri the model's {@code tokenizer.json}: a path, {@code classpath:} resource or any Flink file
     *     system URI, not blank
     * @param text reads the text to tokenize out of a record, not null
     * @return a builder
     * @throws IllegalArgumentException when {@code tokenizerUri} is null or blank
     * @throws NullPointerException when {@code text} is null
     */
    public static <IN> Builder<IN> builder(String tokenizerUri, TextExtractor<IN> text) {
        return new Builder<>(tokenizerUri, text);
    }

    /**
     * Starts a text encoder of records that are the text itself ({@code DataStream<String>}).
     *
     * @param tokenizerUri the model's {@code tokenizer.json}, not blank
     * @return a builder
     * @throws IllegalArgumentException when {@code tokenizerUri} is null or blank
     */
    public static Builder<String> forStrings(String tokenizerUri) {
        return new Builder<>(tokenizerUri, s -> s);
    }

    /**
     * Loads the tokenizer and checks it against the model: called by the operator at open.
     *
     * @param signature the model's signature
     * @param model the model's URI
     * @return the encoder that tokenizes; closed (the tokenizer freed) with the operator
     * @throws IllegalArgumentException when the model's inputs or vocabulary do not fit this encoder and tokenizer
     */
    @Override
    public RecordEncoder<IN> bind(ModelSignature signature, String model) {
        return new TokenizingEncoder<>(this, signature, model);
    }

    /**
     * Not bound to a model: an encoder is bound by the operator at open ({@link #bind}); this one fails.
     *
     * @param record the record
     * @param row its inputs
     * @throws IllegalStateException always: use the encoder in an {@code OnnxInference} spec, which binds it
     */
    @Override
    public void encode(IN record, InputRow row) {
        throw new IllegalStateException("TextEncoder for " + tokenizer + " is not bound to a model: give it to"
                + " OnnxInference.builder(...).encoder(...), which loads the tokenizer when the operator opens");
    }

    /**
     * The tokenizer's location.
     *
     * @return the {@code tokenizer.json} URI
     */
    public String tokenizer() {
        return tokenizer;
    }

    /**
     * The record's text.
     *
     * @return the text extractor
     */
    public TextExtractor<IN> text() {
        return text;
    }

    /**
     * The record's second text of a pair (question and context, premise and hypothesis), or null.
     *
     * @return the pair text extractor, or null for single texts
     */
    public TextExtractor<IN> pairText() {
        return pairText;
    }

    /**
     * The most tokens per record, special tokens included.
     *
     * @return the maximum length, >= 2
     */
    public int maxLength() {
        return maxLength;
    }

    /**
     * What a longer text does.
     *
     * @return truncate or refuse
     */
    public Truncation truncation() {
        return truncation;
    }

    /**
     * The model input of the token ids.
     *
     * @return its name (default {@code input_ids})
     */
    public String inputIdsName() {
        return inputIds;
    }

    /**
     * The model input of the attention mask, filled when the model has it.
     *
     * @return its name (default {@code attention_mask})
     */
    public String attentionMaskName() {
        return attentionMask;
    }

    /**
     * The model input of the token type (segment) ids, filled when the model has it.
     *
     * @return its name (default {@code token_type_ids})
     */
    public String tokenTypeIdsName() {
        return tokenTypeIds;
    }

    @Override
    public String toString() {
        return "TextEncoder{tokenizer=" + tokenizer + ", maxLength=" + maxLength + ", truncation=" + truncation
                + (pairText == null ? "" : ", pairs") + "}";
    }

    /**
     * Builder of {@link TextEncoder}, started by {@link TextEncoder#builder}.
     *
     * @param <IN> the record type
     */
    @PublicEvolving
    public static final class Builder<IN> {
        private final String tokenizer;
        private final TextExtractor<IN> text;
        private TextExtractor<IN> pairText;
        private int maxLength = DEFAULT_MAX_LENGTH;
        private Truncation truncation = Truncation.TRUNCATE;
        private String inputIds = "input_ids";
        private String attentionMask = "attention_mask";
        private String tokenTypeIds = "token_type_ids";

        private Builder(String tokenizer, TextExtractor<IN> text) {
            checkArgument(
                    tokenizer != null && !tokenizer.isBlank(),
                    "tokenizer must name the model's tokenizer.json (a path, classpath: resource or Flink file"
                            + " system URI), got '%s'",
                    tokenizer);
            this.tokenizer = tokenizer.trim();
            this.text = Objects.requireNonNull(text, "text");
        }

        /**
         * A second text per record, tokenized as the pair's second sequence ({@code [CLS] a [SEP] b [SEP]},
         * token type 1). Default: single texts.
         *
         * @param pairText reads the second text, not null; a null or empty second text is a bad record
         * @return this builder
         * @throws NullPointerException when {@code pairText} is null
         */
        public Builder<IN> pairText(TextExtractor<IN> pairText) {
            this.pairText = Objects.requireNonNull(pairText, "pairText");
            return this;
        }

        /**
         * The most tokens per record, special tokens included; default {@value TextEncoder#DEFAULT_MAX_LENGTH}.
         *
         * @param tokens the maximum length, at least 2 (room for the special tokens)
         * @return this builder
         * @throws IllegalArgumentException when {@code tokens} is below 2
         */
        public Builder<IN> maxLength(int tokens) {
            checkArgument(tokens >= 2, "maxLength must be >= 2 tokens (special tokens included), got %s", tokens);
            this.maxLength = tokens;
            return this;
        }

        /**
         * What a text longer than {@link #maxLength} does: {@link Truncation#TRUNCATE} (default) or
         * {@link Truncation#REFUSE} (a dead letter).
         *
         * @param truncation the rule, not null
         * @return this builder
         * @throws NullPointerException when {@code truncation} is null
         */
        public Builder<IN> truncation(Truncation truncation) {
            this.truncation = Objects.requireNonNull(truncation, "truncation");
            return this;
        }

        /**
         * The model's input names, when they differ from Hugging Face's ({@code input_ids}, {@code
         * attention_mask}, {@code token_type_ids}). A model without a mask or type input simply does not get it.
         * A renamed mask should be named to the batch policy too ({@code BatchPolicy.attentionMaskInput}) so that
         * records of different lengths share a run.
         *
         * @param inputIds the token ids input, not blank
         * @param attentionMask the attention mask input, not blank
         * @param tokenTypeIds the token type ids input, not blank
         * @return this builder
         * @throws IllegalArgumentException when a name is null or blank, or two are equal
         */
        public Builder<IN> inputNames(String inputIds, String attentionMask, String tokenTypeIds) {
            checkArgument(inputIds != null && !inputIds.isBlank(), "inputIds must name an input, got '%s'", inputIds);
            checkArgument(
                    attentionMask != null && !attentionMask.isBlank(),
                    "attentionMask must name an input, got '%s'",
                    attentionMask);
            checkArgument(
                    tokenTypeIds != null && !tokenTypeIds.isBlank(),
                    "tokenTypeIds must name an input, got '%s'",
                    tokenTypeIds);
            checkArgument(
                    !inputIds.equals(attentionMask)
                            && !inputIds.equals(tokenTypeIds)
                            && !attentionMask.equals(tokenTypeIds),
                    "the three input names must differ, got %s, %s, %s",
                    inputIds,
                    attentionMask,
                    tokenTypeIds);
            this.inputIds = inputIds;
            this.attentionMask = attentionMask;
            this.tokenTypeIds = tokenTypeIds;
            return this;
        }

        /**
         * Builds the encoder (the tokenizer is loaded when the operator opens).
         *
         * @return the immutable, serializable encoder
         */
        public TextEncoder<IN> build() {
            return new TextEncoder<>(this);
        }
    }
}
