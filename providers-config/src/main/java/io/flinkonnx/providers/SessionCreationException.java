package io.flinkonnx.providers;

import ai.onnxruntime.OrtException;
import org.apache.flink.annotation.PublicEvolving;

/**
 * ONNX Runtime refused to create a session from the model after every fallback the chain allowed: the
 * model's own failure (unreadable, invalid, an operator no registered EP implements), or, for a strict
 * chain, a failure of one of its EPs. Keeps ORT's error code and message (the original exception is the
 * cause; failures of EPs dropped on the way are suppressed exceptions) and the {@link ProviderResolution}
 * of the chain up to the last attempt.
 */
@PublicEvolving
public class SessionCreationException extends OrtException {
    private static final long serialVersionUID = 1L;

    private final ProviderResolution resolution;

    /** Wraps ORT's failure, keeping its code and (prefix-free) message, the original as the cause. */
    public SessionCreationException(OrtException cause, ProviderResolution resolution) {
        super(
                cause.getCode() == null ? OrtErrorCode.ORT_JAVA_UNKNOWN : cause.getCode(),
                SessionOptionsFactory.stripPrefix(cause.getMessage()));
        initCause(cause);
        this.resolution = resolution;
    }

    /** Which EPs were registered or skipped (at registration or at an earlier creation attempt). */
    public ProviderResolution resolution() {
        return resolution;
    }
}
