package io.flinkonnx.flink;

import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Turns one record into the model's named inputs.
 *
 * <pre>{@code
 * RecordEncoder<Txn> encoder = (txn, row) -> row
 *         .put("features", txn.features())          // float[] for a FLOAT input
 *         .put("merchant", new String[] {txn.merchant()});
 * }</pre>
 *
 * @param <IN> the record type
 */
@FunctionalInterface
@PublicEvolving
public interface RecordEncoder<IN> extends Serializable {
    /**
     * Puts the model's inputs for {@code record} into {@code row}, by input name. An input left out is an error of
     * the record, but for an attention mask the operator derives and, in a stateful operator, the states and constants.
     *
     * @param record the record to score
     * @param row the record's inputs, to fill with {@link InputRow#put}
     * @throws Exception when the record cannot be encoded: a batching operator sends it to {@link FailedRecord#tag}
     *     with the reason, the map function fails the task
     */
    void encode(IN record, InputRow row) throws Exception;
}
