package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.engine.InferenceRunner;
import java.util.Collection;
import java.util.List;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.table.data.RowData;

/**
 * What ML_PREDICT does with a row the model cannot score (a NULL, a length or type the model refuses, a run
 * that fails on it): the model option {@code 'on-error'}. The other rows are scored either way. A broken
 * session ({@link SystemicFailureException}) fails the job whatever this says.
 *
 * <pre>{@code
 * CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (probabilities ARRAY<FLOAT>, onnx_error STRING)
 * WITH ('provider' = 'onnx', 'path' = '...', 'on-error' = 'null', 'error-column' = 'onnx_error');
 * }</pre>
 */
@PublicEvolving
public enum OnError {
    /** The job fails with the reason (the default: nothing is dropped silently). */
    FAIL,
    /** The row is emitted with NULL outputs, and the reason in the error column if one is declared. */
    NULL,
    /** The row is dropped (the reason is logged at DEBUG). */
    SKIP;

    /**
     * The output rows for a row that failed with {@code e}, or the exception to fail the job with. A
     * {@link SystemicFailureException} (the session is broken, not the row) fails the job in every mode, so
     * that its restart reloads the session instead of dropping or NULLing every row from then on.
     */
    Collection<RowData> outcome(Exception e, SqlBinding binding, String version) {
        if (e instanceof SystemicFailureException) {
            throw (SystemicFailureException) e;
        }
        switch (this) {
            case NULL:
                return List.of(binding.stampVersion(binding.failed(InferenceRunner.reasonOf(e)), version));
            case SKIP:
                return List.of();
            default:
                throw e instanceof RuntimeException
                        ? (RuntimeException) e
                        : new RecordConversionException(InferenceRunner.reasonOf(e), e);
        }
    }
}
