package io.flinkonnx.examples;

/** One scored transaction, as written to the predictions topic. */
public class Prediction {
    public String key;
    public int inputPartition;
    public long inputOffset;
    public String model;
    /** The model version that scored the record (changes with a model update). */
    public String modelVersion;

    public String modelSha256;
    /** [P(legit), P(fraud)]. */
    public float[] probabilities;
    /**
     * From the job's Kafka source reading the input record to its score, in milliseconds (microsecond resolution): the time the
     * record spent in this job (queues, batching, inference), not the time it waited in Kafka before.
     */
    public double latencyMs;
    /** When it was scored (wall clock, ms). */
    public long scoredAtMillis;

    public Prediction() {}
}
