package io.flinkonnx.flink.models;

import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.engine.BatchBytes;
import io.flinkonnx.flink.engine.InferenceRunner;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;

/**
 * One model of a multi-model operator: its state (loading, ready, failed), its runner once loaded, and its
 * own batch buffer, so each model's batches have the size and delay triggers of the batch policy.
 */
final class ServedModel<IN, OUT> {
    enum State {
        LOADING,
        READY,
        FAILED
    }

    final ModelRef ref;
    final String label;
    State state = State.LOADING;
    CompletableFuture<InferenceRunner<IN, OUT>> loading;
    InferenceRunner<IN, OUT> runner;
    long bytes;

    /** Records that came while the model loaded, in arrival order. */
    final List<Object> waitingRecords = new ArrayList<>();

    final List<Long> waitingTimestamps = new ArrayList<>();

    int capacity;
    Object[] records;
    Object[] results;
    Exception[] failures;
    long[] timestamps;
    boolean[] hasTimestamp;
    int size;
    long bufferedBytes;
    /** The buffer's bytes as the byte bound counts them (padding to the widest record included). */
    BatchBytes batchBytes;

    long deadline;

    Exception failure;
    /** "failed to load" or "is broken": what the dead letters say of the model. */
    String failedWhat;

    int failuresInRow;
    long retryAtMillis;

    Counter inferences;
    Histogram batchLatencyMicros;

    ServedModel(ModelRef ref, String label) {
        this.ref = ref;
        this.label = label;
    }

    /** Buffers sized for batches of {@code capacity} (one spare row is the runner's). */
    void ready(InferenceRunner<IN, OUT> runner, int capacity) {
        this.runner = runner;
        this.capacity = capacity;
        this.records = new Object[capacity];
        this.results = new Object[capacity];
        this.failures = new Exception[capacity];
        this.timestamps = new long[capacity];
        this.hasTimestamp = new boolean[capacity];
        this.bytes = runner.session().modelSizeBytes();
        this.batchBytes = new BatchBytes(runner);
        this.state = State.READY;
        this.failuresInRow = 0;
        this.failure = null;
    }

    @Override
    public String toString() {
        return label + " (" + ref.uri() + ")";
    }
}
