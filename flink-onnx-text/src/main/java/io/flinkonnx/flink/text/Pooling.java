package io.flinkonnx.flink.text;

import org.apache.flink.annotation.PublicEvolving;

/** How {@link SentenceEmbedding} turns a {@code [sequence, hidden]} output into one vector per record. */
@PublicEvolving
public enum Pooling {
    /**
     * The mean of the token vectors under the attention mask (sentence-transformers' default): the record's own
     * tokens, never the padding of a batch.
     */
    MEAN,
    /** The first token's vector ({@code [CLS]}). */
    CLS
}
