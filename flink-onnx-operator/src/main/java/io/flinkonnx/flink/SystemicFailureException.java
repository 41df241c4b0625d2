package io.flinkonnx.flink;

import org.apache.flink.annotation.PublicEvolving;

/**
 * Every run of a model failed in several batches in a row (see
 * {@link OnnxInferenceSpec.Builder#maxConsecutiveFailedBatches}) and so did an input known to run on the
 * session (a record that scored on it earlier, or its warm-up input): the session or its device is broken,
 * not the records. Thrown from the operator so that the job fails and restarts (reloading the session) instead
 * of turning every record into a dead letter; the cause is the last run's error.
 */
@PublicEvolving
public final class SystemicFailureException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public SystemicFailureException(String message, Throwable cause) {
        super(message, cause);
    }
}
