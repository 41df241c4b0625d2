package io.flinkonnx.flink.text;

import static org.apache.flink.util.Preconditions.checkArgument;

import io.flinkonnx.flink.ModelBound;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.flink.text.internal.Pooled;
import io.flinkonnx.model.ModelSignature;
import java.io.Serializable;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Sentence embeddings from a text model's output: a {@code [batch, sequence, hidden]} output such as {@code
 * last_hidden_state} pooled by {@link Pooling#MEAN} (under the attention mask) or {@link Pooling#CLS}, or a
 * {@code [batch, hidden]} output the model pools itself ({@code pooler_output}, {@code sentence_embedding}),
 * taken as is; optionally L2-normalised (for cosine similarity as a dot product). Immutable and serializable.
 *
 * <pre>{@code
 * SentenceEmbedding embedding = SentenceEmbedding.mean().normalized();
 * OnnxInference.<Doc>builder("s3://models/minilm/model.onnx")
 *         .encoder(TextEncoder.builder("s3://models/minilm/tokenizer.json", Doc::text).build())
 *         .decoder((doc, out) -> new Embedded(doc.id(), embedding.embed(out)), Types.POJO(Embedded.class));
 * }</pre>
 */
@PublicEvolving
public final class SentenceEmbedding implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The output {@link #mean()} and {@link #cls()} read: Hugging Face's {@code last_hidden_state}. */
    public static final String LAST_HIDDEN_STATE = "last_hidden_state";

    private final String output;
    private final Pooling pooling;
    private final boolean normalize;

    private SentenceEmbedding(String output, Pooling pooling, boolean normalize) {
        this.output = output;
        this.pooling = pooling;
        this.normalize = normalize;
    }

    /**
     * Mean pooling of {@code last_hidden_state} under the attention mask.
     *
     * @return the embedding, not normalised
     */
    public static SentenceEmbedding mean() {
        return new SentenceEmbedding(LAST_HIDDEN_STATE, Pooling.MEAN, false);
    }

    /**
     * The first ({@code [CLS]}) token of {@code last_hidden_state}.
     *
     * @return the embedding, not normalised
     */
    public static SentenceEmbedding cls() {
        return new SentenceEmbedding(LAST_HIDDEN_STATE, Pooling.CLS, false);
    }

    /**
     * This pooling over another output. A {@code [batch, hidden]} output is taken as is (it is pooled already).
     *
     * @param outputName the model output, not blank
     * @return a new embedding; this one is unchanged
     * @throws IllegalArgumentException when {@code outputName} is null or blank
     */
    public SentenceEmbedding fromOutput(String outputName) {
        checkArgument(
                outputName != null && !outputName.isBlank(), "outputName must name an output, got '%s'", outputName);
        return new SentenceEmbedding(outputName, pooling, normalize);
    }

    /**
     * This embedding with another pooling.
     *
     * @param pooling mean or CLS, not null
     * @return a new embedding; this one is unchanged
     * @throws NullPointerException when {@code pooling} is null
     */
    public SentenceEmbedding pooling(Pooling pooling) {
        return new SentenceEmbedding(output, Objects.requireNonNull(pooling, "pooling"), normalize);
    }

    /**
     * This embedding scaled to unit L2 norm.
     *
     * @return a new, normalising embedding; this one is unchanged
     */
    public SentenceEmbedding normalized() {
        return new SentenceEmbedding(output, pooling, true);
    }

    /**
     * This embedding normalised or not.
     *
     * @param normalize true to scale each vector to unit L2 norm
     * @return a new embedding; this one is unchanged
     */
    public SentenceEmbedding normalized(boolean normalize) {
        return new SentenceEmbedding(output, pooling, normalize);
    }

    /**
     * The embedding of one record, from its outputs (in a decoder).
     *
     * @param outputs the record's outputs
     * @return the vector, {@code hidden} floats
     * @throws RecordConversionException when the output is missing, not FLOAT, of another rank, or (with
     *     normalisation) all zeros
     */
    public float[] embed(OutputRow outputs) {
        return Pooled.embed(outputs.floats(output), outputs.shape(output), output, pooling, normalize);
    }

    /**
     * A decoder whose result is the embedding; it checks the model's output at open.
     *
     * @param <IN> the record type
     * @return the decoder (use {@code Types.PRIMITIVE_ARRAY(Types.FLOAT)} as its result type)
     */
    public <IN> ResultDecoder<IN, float[]> decoder() {
        return new Decoder<>(this);
    }

    /**
     * Checks that the model has this embedding's output, as {@code [batch, sequence, hidden]} whose sequence axis
     * is the inputs' (so that padding is cut off before pooling) or {@code [batch, hidden]}.
     *
     * @param signature the model's signature
     * @param model the model's URI, for the message
     * @throws IllegalArgumentException when the output does not fit
     */
    public void check(ModelSignature signature, String model) {
        Pooled.checkEmbeddingOutput(signature, model, output, pooling);
    }

    /**
     * The output this embedding reads.
     *
     * @return the output name
     */
    public String outputName() {
        return output;
    }

    /**
     * The pooling of a {@code [batch, sequence, hidden]} output.
     *
     * @return mean or CLS
     */
    public Pooling pooling() {
        return pooling;
    }

    /**
     * Whether vectors are scaled to unit L2 norm.
     *
     * @return true when normalised
     */
    public boolean normalize() {
        return normalize;
    }

    @Override
    public String toString() {
        return "SentenceEmbedding{" + output + ", " + pooling + (normalize ? ", L2-normalised" : "") + "}";
    }

    /** The decoder of {@link #decoder()}: checks the output at open, then embeds. */
    private static final class Decoder<IN>
            implements ResultDecoder<IN, float[]>, ModelBound<ResultDecoder<IN, float[]>> {
        private static final long serialVersionUID = 1L;
        private final SentenceEmbedding embedding;

        Decoder(SentenceEmbedding embedding) {
            this.embedding = embedding;
        }

        @Override
        public ResultDecoder<IN, float[]> bind(ModelSignature signature, String model) {
            embedding.check(signature, model);
            return this;
        }

        @Override
        public float[] decode(IN record, OutputRow outputs) {
            return embedding.embed(outputs);
        }
    }
}
