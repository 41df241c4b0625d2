package io.flinkonnx.flink.sql;

import org.apache.flink.annotation.PublicEvolving;

/**
 * {@link OnnxAsyncScoreFunction} that returns NULL for a row the model cannot score (a NULL element, a length
 * or value the model refuses, a run that fails on that row) instead of failing the job; the rows batched with
 * it are scored:
 *
 * <pre>
 * CREATE FUNCTION score_or_null AS 'io.flinkonnx.flink.sql.OnnxAsyncScoreOrNullFunction';
 * SELECT id, score_or_null('s3://models/fraud.onnx', features) AS p FROM txns;   -- p IS NULL for bad rows
 * </pre>
 */
@PublicEvolving
public class OnnxAsyncScoreOrNullFunction extends OnnxAsyncScoreFunction {
    private static final long serialVersionUID = 1L;

    /** For SQL {@code CREATE FUNCTION}: the model URI is the first argument of every call. */
    public OnnxAsyncScoreOrNullFunction() {
        super(null, true, DEFAULT_MAX_BATCH_SIZE);
    }

    /**
     * Bound to {@code modelUri}: calls pass only the model's inputs.
     *
     * @param modelUri the model
     */
    public OnnxAsyncScoreOrNullFunction(String modelUri) {
        super(modelUri, true, DEFAULT_MAX_BATCH_SIZE);
    }
}
