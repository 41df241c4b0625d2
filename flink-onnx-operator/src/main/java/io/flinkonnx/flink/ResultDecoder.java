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
    /**
     * Builds the result of {@code record} from its outputs.
     *
     * @param record the record that was scored
     * @param outputs the model's outputs for this record alone (its row of the batch), read by output name
     * @return the result emitted for the record
     * @throws Exception when the result cannot be built: a batching operator sends the record to {@link
     *     FailedRecord#tag} with the reason, the map function fails the task
     */
    OUT decode(IN record, OutputRow outputs) throws Exception;
}
