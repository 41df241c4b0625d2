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
    Map<String, Object> references(IN record) throws Exception;
}
