package io.flinkonnx.flink;

import org.apache.flink.annotation.PublicEvolving;

/**
 * A record does not fit the model: an input missing, unknown, null, of the wrong type or shape, or an
 * output read with the wrong accessor. The message names the input/output, what the model expects and
 * what the record gave.
 */
@PublicEvolving
public class RecordConversionException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public RecordConversionException(String message) {
        super(message);
    }

    public RecordConversionException(String message, Throwable cause) {
        super(message, cause);
    }
}
