package io.flinkonnx.flink.engine;

import io.flinkonnx.model.ModelSignature;
import java.util.Set;
import org.apache.flink.annotation.Internal;

/**
 * Inputs an operator puts into each row itself instead of the record's encoder: recurrent states (stacked
 * along their own batch axis, which may be any axis) and constants (no batch axis: one value shared by
 * every row of a run). The operator puts them with {@code RecordInputs.putSupplied}, which checks them like
 * any record value, after {@link InferenceRunner#encode} and before scoring.
 */
@Internal
public interface SuppliedInputs {
    /**
     * The signature the runner works with, from the model's: the supplied inputs' (and paired outputs')
     * batch axes set, constants without one. Fails naming what does not fit the model.
     */
    ModelSignature adapt(ModelSignature signature, String model);

    /** Whether the operator, not the record, gives input {@code input}. */
    boolean supplies(String input);

    /**
     * The inputs and outputs that carry per-key state (none by default): a model version whose signature differs
     * from the serving one's in these alone may take over with every state reset, where the user allows it.
     */
    default Set<String> stateTensors() {
        return Set.of();
    }
}
