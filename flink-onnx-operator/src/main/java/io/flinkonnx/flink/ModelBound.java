package io.flinkonnx.flink;

import io.flinkonnx.model.ModelSignature;
import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A {@link RecordEncoder} or {@link ResultDecoder} that sets itself up for the model it serves once the model is
 * loaded: it checks the model's inputs or outputs, and builds what cannot travel in a serialized spec (a native
 * tokenizer). Each scoring instance (operator subtask, SQL function, model version) calls {@link #bind} at open,
 * before any record, and uses what it returns; a bound object that is {@link AutoCloseable} is closed when the
 * instance closes. A failure fails the job at start, with its message.
 *
 * <pre>{@code
 * final class Tokenizing implements RecordEncoder<Doc>, ModelBound<RecordEncoder<Doc>> {
 *     public RecordEncoder<Doc> bind(ModelSignature signature, String model) {
 *         checkArgument(signature.input("input_ids").isPresent(), "%s has no input_ids", model);
 *         return new OpenTokenizer(...); // AutoCloseable: closed with the operator
 *     }
 *     public void encode(Doc doc, InputRow row) {
 *         throw new IllegalStateException("used unbound");
 *     }
 * }
 * }</pre>
 *
 * @param <T> what binding gives: the encoder or decoder to use ({@code RecordEncoder<IN>} or {@code
 *     ResultDecoder<IN, OUT>})
 */
@PublicEvolving
public interface ModelBound<T> extends Serializable {
    /**
     * The encoder or decoder to use with this model, set up and checked against its signature.
     *
     * @param signature the loaded model's signature (inputs, outputs, {@link ModelSignature#lookupTableRows})
     * @param model the model's URI, to name it in errors
     * @return the encoder or decoder the scoring instance uses; closed with it when {@link AutoCloseable}
     * @throws Exception when the model does not fit: the job fails at start with this message
     */
    T bind(ModelSignature signature, String model) throws Exception;
}
