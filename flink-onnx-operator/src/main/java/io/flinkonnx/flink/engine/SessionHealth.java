package io.flinkonnx.flink.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtSession.RunOptions;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.placement.PlacementProbe;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.model.TensorSpec;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether a runner's session still answers, told apart from bad records. It counts the batches in a row in
 * which every run failed, keeps a copy of a record known to run on the session, and, when the count reaches
 * {@code maxConsecutiveFailedBatches}, probes the session (that record, else synthetic inputs of ones at free
 * lengths 1, 2, 4, ... {@link #MAX_PROBE_LENGTH}): if a probe runs, the records are bad and go on as dead
 * letters; if every probe fails, the session is broken and the job fails with a {@link
 * SystemicFailureException} so that a restart reloads it. The probes run with the runner's {@link RunOptions},
 * so a cancelled runner's probes fail too.
 */
final class SessionHealth {
    /**
     * The largest record kept as the probe of a session that may be broken (a heap copy held for the runner's
     * life); larger records are not kept, a later smaller one may be.
     */
    static final long KNOWN_GOOD_MAX_BYTES = 1 << 20;

    /** The longest free length the synthetic probe tries (doubling from 1). */
    static final long MAX_PROBE_LENGTH = 1024;

    // The runner's logger: these lines are the runner's verdicts, and log settings name the runner.
    private static final Logger LOG = LoggerFactory.getLogger(InferenceRunner.class);

    private final String modelName;
    private final int maxConsecutiveFailedBatches;
    private final SharedSession shared;
    private final TensorPacker packer;
    private final RunOptions runOptions;
    private final int inputCount;
    private final RecordInputs[] probeRow = new RecordInputs[1];

    private int consecutiveFailedBatches;
    /**
     * A copy of a record that ran on this session alone at its own shape (no padding), or null until one has:
     * an input known to run, the probe of {@link #checkSessionAnswers}.
     */
    private RecordInputs knownGood;

    SessionHealth(
            String modelName,
            int maxConsecutiveFailedBatches,
            SharedSession shared,
            TensorPacker packer,
            RunOptions runOptions,
            int inputCount) {
        this.modelName = modelName;
        this.maxConsecutiveFailedBatches = maxConsecutiveFailedBatches;
        this.shared = shared;
        this.packer = packer;
        this.runOptions = runOptions;
        this.inputCount = inputCount;
    }

    /**
     * After a successful run of rows {@code [from, to)}: keeps a copy of its first record as the probe of
     * {@link #checkSessionAnswers}, unless one is kept already, the record is larger than {@link
     * #KNOWN_GOOD_MAX_BYTES}, or the run was padded (the record ran at the batch's shape, not its own).
     */
    void ran(RecordInputs[] rows, int from, int to) {
        if (knownGood != null) {
            return;
        }
        RecordInputs first = rows[from];
        if (first.byteEstimate() > KNOWN_GOOD_MAX_BYTES) {
            return;
        }
        for (int r = from + 1; r < to; r++) {
            for (int i = 0; i < inputCount; i++) {
                if (!Arrays.equals(first.shape(i), rows[r].shape(i))) {
                    return;
                }
            }
        }
        knownGood = first.copy();
    }

    /**
     * After a batch: resets the count when a run succeeded (or none failed), else counts it and, at {@code
     * maxConsecutiveFailedBatches}, probes the session.
     *
     * @throws SystemicFailureException when the probes say the session, not the records, is broken
     */
    void batchScored(int succeededRuns, int failedRuns, Exception lastError) {
        if (succeededRuns > 0 || failedRuns == 0) {
            consecutiveFailedBatches = 0;
            return;
        }
        consecutiveFailedBatches++;
        if (consecutiveFailedBatches >= maxConsecutiveFailedBatches) {
            checkSessionAnswers(lastError);
        }
    }

    /**
     * After {@code maxConsecutiveFailedBatches} batches in which every run failed: bad records, or a broken
     * session? An input known to run answers: a record that scored on this session earlier; else synthetic
     * inputs of ones at free lengths 1, 2, 4, ... 1024 (a convolution or reflect pad cannot run at the
     * warm-up's length of 1, and failing the job for that would fail it again on every restart as the source
     * replays the same records). If one runs, the records are bad and go on as dead letters; if every probe
     * fails, the session is broken (from its load, if nothing ever scored on it) and the job fails so that a
     * restart reloads it.
     */
    private void checkSessionAnswers(Exception lastError) {
        String probe = null;
        Probe answer = Probe.NOT_RUN;
        if (knownGood != null) {
            probe = "a record that scored earlier on this session";
            answer = runProbe(knownGood);
        }
        if (answer == Probe.NOT_RUN) {
            probe = "synthetic inputs of ones at every free length from 1 to " + MAX_PROBE_LENGTH;
            answer = runSyntheticLengths();
        }
        if (answer == Probe.FAILED) {
            throw new SystemicFailureException(
                    "Every run of model " + modelName + " failed in "
                            + consecutiveFailedBatches + " batches in a row (maxConsecutiveFailedBatches = "
                            + maxConsecutiveFailedBatches + ") and so did " + probe
                            + ": the session, not the records, is broken. Last error: " + lastError,
                    lastError);
        }
        if (answer == Probe.RAN) {
            LOG.warn(
                    "Every run of model {} failed in {} batches in a row, but {} runs: the records are bad, not the"
                            + " session; they go on as dead letters. Last error: {}",
                    modelName,
                    consecutiveFailedBatches,
                    probe,
                    lastError.getMessage());
        } else {
            LOG.warn(
                    "Every run of model {} failed in {} batches in a row, and {}: bad records cannot be told from a"
                            + " broken session, so they go on as dead letters. Last error: {}",
                    modelName,
                    consecutiveFailedBatches,
                    probe + " could not be built",
                    lastError.getMessage());
        }
        consecutiveFailedBatches = 0;
    }

    /** What a probe of the session says. */
    private enum Probe {
        /** It ran: the session answers. */
        RAN,
        /** It failed: the session is broken. */
        FAILED,
        /** It could not be built or packed (out of memory): that says nothing of the session. */
        NOT_RUN
    }

    /** Runs {@code row} alone on the session. */
    private Probe runProbe(RecordInputs row) {
        probeRow[0] = row;
        Map<String, OnnxTensor> tensors;
        try {
            tensors = packer.pack(probeRow, 0, 1);
        } catch (OrtException | RuntimeException e) {
            LOG.warn("The probe of model {} could not be packed: {}", modelName, e.toString());
            return Probe.NOT_RUN;
        } finally {
            probeRow[0] = null;
        }
        return runTensors(tensors);
    }

    /**
     * Synthetic inputs (ones) at free lengths 1, 2, 4, ... {@link #MAX_PROBE_LENGTH}: the first that runs shows
     * the session answers (a convolution or reflect pad needs a length of 2 or more, so length 1 alone would
     * call a healthy session broken); if every one that could be built fails, the session is broken (a
     * session broken from its load fails them all).
     */
    private Probe runSyntheticLengths() {
        Probe answer = Probe.NOT_RUN;
        for (long length = 1; length <= MAX_PROBE_LENGTH; length *= 2) {
            Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
            try {
                for (TensorSpec input : shared.signature().inputs()) {
                    tensors.put(input.name(), PlacementProbe.ones(OrtRuntime.env(), input, length));
                }
            } catch (OrtException | RuntimeException | OutOfMemoryError e) {
                tensors.values().forEach(OnnxTensor::close);
                LOG.warn("The synthetic probe of model {} at length {} could not be built: {}", modelName, length, e);
                return answer;
            }
            answer = runTensors(tensors);
            if (answer == Probe.RAN || !hasFreeDims()) {
                return answer;
            }
        }
        return answer;
    }

    /** Whether some input has a free dim besides its batch axis (else every length is the same input). */
    private boolean hasFreeDims() {
        for (TensorSpec input : shared.signature().inputs()) {
            for (int d = 0; d < input.dims().size(); d++) {
                if (d != input.batchAxis() && !input.dims().get(d).isFixed()) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Runs {@code tensors} on the session, then closes them and the result. */
    private Probe runTensors(Map<String, OnnxTensor> tensors) {
        try (OrtSession.Result ignored = shared.session().run(tensors, runOptions)) {
            return Probe.RAN;
        } catch (OrtException | RuntimeException e) {
            LOG.warn("The probe of model {} failed: {}", modelName, e.getMessage());
            return Probe.FAILED;
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
    }
}
