package io.flinkonnx.examples;

/** The output of {@link TextEmbeddingJob}: a message's id, where it was read, and its sentence embedding. */
public class EmbeddedText {
    /** The message's {@code id} field (also its Kafka key). */
    public String id;

    public int inputPartition;
    public long inputOffset;
    /** Mean of the token vectors under the attention mask, L2-normalised. */
    public float[] embedding;

    public EmbeddedText() {}
}
