package io.flinkonnx.model;

import org.apache.flink.annotation.PublicEvolving;

/**
 * A model could not be fetched, verified or accepted. The message always names the file (or URI) and
 * the cause, and where there is one, the fix.
 */
@PublicEvolving
public class ModelLoadException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ModelLoadException(String message) {
        super(message);
    }

    public ModelLoadException(String message, Throwable cause) {
        super(message, cause);
    }
}
