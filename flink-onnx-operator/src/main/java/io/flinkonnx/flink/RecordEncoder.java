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
    void encode(IN record, InputRow row) throws Exception;
}
