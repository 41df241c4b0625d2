package io.flinkonnx.flink.sql;

import org.apache.flink.annotation.PublicEvolving;

/**
 * {@link OnnxScoreFunction} that returns NULL for a row the model cannot score (a NULL element, a length or
 * value the model refuses, a run that fails on that row) instead of failing the job:
 *
 * <pre>
 * CREATE FUNCTION score_or_null AS 'io.flinkonnx.flink.sql.OnnxScoreOrNullFunction';
 * SELECT id, score_or_null('s3://models/fraud.onnx', features) AS p FROM txns;   -- p IS NULL for bad rows
 * </pre>
 */
@PublicEvolving
public class OnnxScoreOrNullFunction extends OnnxScoreFunction {
    private static final long serialVersionUID = 1L;

    /** For SQL {@code CREATE FUNCTION}: the model URI is the first argument of every call. */
    public OnnxScoreOrNullFunction() {
        super(null, true);
    }

    /** Bound to {@code modelUri}: calls pass only the model's inputs. */
    public OnnxScoreOrNullFunction(String modelUri) {
        super(modelUri, true);
    }
}
