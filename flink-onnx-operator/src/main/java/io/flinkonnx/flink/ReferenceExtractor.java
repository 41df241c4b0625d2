package io.flinkonnx.flink;

import java.io.Serializable;
import java.util.Map;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Reads the reference outputs a record carries (for example scores from the system being replaced), keyed
 * by output name, each a flat array of the output's type for this record; null or an empty map when the
 * record carries none.
 *
 * <pre>{@code
 * ReferenceExtractor<Txn> legacyScore = txn -> Map.of("probability", txn.legacyProbabilities());
 * }</pre>
 *
 * @param <IN> the record type
 */
@FunctionalInterface
@PublicEvolving
public interface ReferenceExtractor<IN> extends Serializable {
    /**
     * The reference outputs {@code record} carries, keyed by output name.
     *
     * @param record a record of a batch the drift check samples
     * @return for each output name the model has, the reference values as a flat array of the output's type; null
     *     or an empty map when the record carries none
     * @throws Exception when the references cannot be read: the batch's comparison is skipped with a WARN, and the
     *     records are scored as usual (a name the model has no output of is skipped the same way)
     */
    Map<String, Object> references(IN record) throws Exception;
}
