package io.flinkonnx.flink.models;

import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.versions.ModelVersions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One model of a multi-model operator: its state (loading, ready, failed), its runner once loaded, and its
 * own record buffer, so each model's batches have the size, byte and delay triggers of the batch policy.
 */
final class ServedModel<IN, OUT> {
    enum State {
        LOADING,
        READY,
        FAILED
    }

    final ModelRef ref;
    /** The version it serves: what predictions, dead letters and logs name it by (a watched folder's changes). */
    String label;
    /** Its metrics' label: its first label (for a watched folder, the folder's name). */
    final String metricsLabel;

    State state = State.LOADING;
    CompletableFuture<ModelTrack.Loaded<IN, OUT>> loading;
    /** Its versions, when it is updatable (a watched folder, or addressed by a control message); else null. */
    ModelTrack track;
    /** The versions of this loaded updatable model (its updates load and swap through it), or null. */
    ModelVersions<IN, OUT> versions;

    InferenceRunner<IN, OUT> runner;
    long bytes;

    /** Records that came while the model loaded, in arrival order. */
    final List<Object> waitingRecords = new ArrayList<>();

    final List<Long> waitingTimestamps = new ArrayList<>();

    /** Its records buffered for the next batch, once loaded (one per loaded model). */
    RecordBuffer<IN, OUT> buffer;

    Exception failure;
    /** "failed to load" or "is broken": what the dead letters say of the model. */
    String failedWhat;

    int failuresInRow;
    long retryAtMillis;

    ServedModel(ModelRef ref, String label) {
        this.ref = ref;
        this.label = label;
        this.metricsLabel = label;
    }

    /** Loaded: scores through {@code runner}, its records buffered in {@code buffer}. */
    void ready(InferenceRunner<IN, OUT> runner, RecordBuffer<IN, OUT> buffer) {
        this.runner = runner;
        this.buffer = buffer;
        this.bytes = runner.session().residentBytes(); // measured at load; the file size only when unmeasured
        this.state = State.READY;
        this.failuresInRow = 0;
        this.failure = null;
    }

    @Override
    public String toString() {
        return label + " (" + ref.uri() + ")";
    }
}
