package io.flinkonnx.examples;

/** One scored transaction, as written to the predictions topic. */
public class Prediction {
    public String key;
    public int inputPartition;
    public long inputOffset;
    public String model;
    public String modelSha256;
    /** [P(legit), P(fraud)]. */
    public float[] probabilities;
    /** From the input record's Kafka timestamp to scoring, in milliseconds. */
    public long latencyMs;

    public Prediction() {}
}
