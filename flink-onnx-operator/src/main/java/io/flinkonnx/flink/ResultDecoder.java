package io.flinkonnx.flink;

import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Builds the result of one record from the record and its slice of the model's outputs.
 *
 * <pre>{@code
 * ResultDecoder<Txn, Scored> decoder = (txn, out) -> new Scored(txn.id(), out.floats("probability")[1]);
 * }</pre>
 *
 * @param <IN> the record type
 * @param <OUT> the result type
 */
@FunctionalInterface
@PublicEvolving
public interface ResultDecoder<IN, OUT> extends Serializable {
    OUT decode(IN record, OutputRow outputs) throws Exception;
}
