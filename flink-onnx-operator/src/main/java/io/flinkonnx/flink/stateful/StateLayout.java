package io.flinkonnx.flink.stateful;

import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.engine.SuppliedInputs;
import io.flinkonnx.flink.tensor.ElementCodec;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.flink.annotation.Internal;

/**
 * Where a {@link RecurrentState} meets the model: the state inputs and outputs with their batch axes, each
 * state's per-key shape, element type and initial value, and the constants; all checked against the
 * model's signature when the job starts ({@link #adapt}), with messages naming what does not fit.
 */
@Internal
public final class StateLayout implements SuppliedInputs {
    private final RecurrentState<?> declared;
    private final Set<String> supplied = new HashSet<>();

    // Filled by adapt, one entry per state pair / constant.
    private int[] stateInput;
    private String[] stateOutput;
    private long[][] stateShape;
    private ElementType[] stateType;
    private Object[] initial;
    private int[] constantInput;
    private Object[] constantValues;
    private long[][] constantShape;

    public StateLayout(RecurrentState<?> declared) {
        this.declared = declared;
        declared.pairs().forEach(p -> supplied.add(p.input()));
        declared.constants().forEach(c -> supplied.add(c.input()));
    }

    @Override
    public boolean supplies(String input) {
        return supplied.contains(input);
    }

    @Override
    public Set<String> stateTensors() {
        Set<String> names = new HashSet<>();
        declared.pairs().forEach(p -> {
            names.add(p.input());
            names.add(p.output());
        });
        return names;
    }

    /**
     * Whether a key's stored states fit {@code other} as they fit this layout: the same element type and per-key
     * shape for every state (the pairs are the same: both layouts adapt one declaration).
     */
    boolean sameStates(StateLayout other) {
        for (int p = 0; p < states(); p++) {
            if (stateType[p] != other.stateType[p] || !Arrays.equals(stateShape[p], other.stateShape[p])) {
                return false;
            }
        }
        return true;
    }

    @Override
    public ModelSignature adapt(ModelSignature signature, String model) {
        List<TensorSpec> inputs = new ArrayList<>(signature.inputs());
        List<TensorSpec> outputs = new ArrayList<>(signature.outputs());
        Set<String> batchSymbols = new HashSet<>();
        for (TensorSpec in : inputs) {
            if (!supplied.contains(in.name())
                    && in.hasBatchAxis()
                    && in.dims().get(in.batchAxis()).isSymbolic()) {
                batchSymbols.add(in.dims().get(in.batchAxis()).symbol());
            }
        }
        List<RecurrentState.Pair> pairs = declared.pairs();
        int n = pairs.size();
        stateInput = new int[n];
        stateOutput = new String[n];
        stateShape = new long[n][];
        stateType = new ElementType[n];
        initial = new Object[n];
        for (int p = 0; p < n; p++) {
            RecurrentState.Pair pair = pairs.get(p);
            int i = indexOf(inputs, pair.input(), "input", model);
            int o = indexOf(outputs, pair.output(), "output", model);
            TensorSpec in = inputs.get(i);
            TensorSpec out = outputs.get(o);
            if (in.kind() != TensorSpec.Kind.TENSOR || !in.isShapeKnown() || in.rank() == 0) {
                throw new IllegalArgumentException("State input " + in + " of " + model
                        + " must be a tensor of known rank >= 1 (the state's batch axis is one of its dims)");
            }
            if (out.elementType() != in.elementType()) {
                throw new IllegalArgumentException("State pair " + pair + " of " + model + ": output " + out
                        + " has another element type than input " + in);
            }
            int axis = pair.batchAxis() == RecurrentState.DERIVED_AXIS
                    ? derivedAxis(in, batchSymbols, pair, model)
                    : pair.batchAxis();
            if (axis >= in.rank()) {
                throw new IllegalArgumentException("State pair " + pair + " of " + model + ": batch axis " + axis
                        + " is outside input " + in + " (rank " + in.rank() + ")");
            }
            TensorSpec stateIn = in.withBatchAxis(axis);
            for (Dim d : stateIn.recordDims()) {
                if (!d.isFixed()) {
                    throw new IllegalArgumentException("State input " + in + " of " + model + " has a free dim '" + d
                            + "' besides its batch axis " + axis + ": a state's per-key shape must be fixed");
                }
            }
            if (out.isShapeKnown() && out.rank() != in.rank()) {
                throw new IllegalArgumentException("State pair " + pair + " of " + model + ": output " + out
                        + " and input " + in + " differ in rank; the next state must have the state's shape");
            }
            if (!out.isShapeKnown()) {
                throw new IllegalArgumentException(
                        "State output " + out + " of " + model
                                + " has no declared rank; the model must declare the state output's dims (they may be unknown)");
            }
            inputs.set(i, stateIn);
            outputs.set(o, out.withBatchAxis(axis));
            stateInput[p] = i;
            stateOutput[p] = out.name();
            stateShape[p] = fixedShape(stateIn.recordDims());
            stateType[p] = in.elementType();
            int values = (int) product(stateShape[p]);
            Object init = pair.initial();
            if (init == null) {
                init = ElementCodec.of(in.elementType()).newArray(values);
            } else if (init.getClass() != in.elementType().javaArrayType() || Array.getLength(init) != values) {
                throw new IllegalArgumentException("The initial value of state '" + pair.input() + "' of " + model
                        + " is " + Array.getLength(init) + " " + init.getClass().getSimpleName()
                        + " values; the state takes "
                        + values + " " + in.elementType() + " values (per-key shape " + Arrays.toString(stateShape[p])
                        + ")");
            }
            initial[p] = init;
        }
        List<RecurrentState.Constant> constants = declared.constants();
        constantInput = new int[constants.size()];
        constantValues = new Object[constants.size()];
        constantShape = new long[constants.size()][];
        for (int c = 0; c < constants.size(); c++) {
            RecurrentState.Constant constant = constants.get(c);
            int i = indexOf(inputs, constant.input(), "input", model);
            TensorSpec in = inputs.get(i).withBatchAxis(TensorSpec.NO_BATCH_AXIS);
            Object values = constant.values();
            if (values.getClass() != in.elementType().javaArrayType()) {
                throw new IllegalArgumentException("Constant '" + constant.input() + "' of " + model + " was given as "
                        + values.getClass().getSimpleName() + " but input " + in + " takes "
                        + in.elementType() + " values ("
                        + (in.elementType().javaArrayType() == null
                                ? "unsupported"
                                : in.elementType().javaArrayType().getSimpleName())
                        + ")");
            }
            inputs.set(i, in);
            constantInput[c] = i;
            constantValues[c] = values;
            constantShape[c] = constant.shape();
        }
        ModelSignature adapted = new ModelSignature(
                signature.format(),
                signature.irVersion(),
                signature.opsetImports(),
                signature.producerName(),
                signature.producerVersion(),
                inputs,
                outputs);
        // Checked like a record's value once, so that a misfit fails the job at start, not every run.
        RecordInputs probe = new RecordInputs(model, adapted.inputs());
        for (int c = 0; c < constantInput.length; c++) {
            try {
                probe.putSupplied(constantInput[c], constantValues[c], constantShape[c]);
            } catch (RuntimeException e) {
                throw new IllegalArgumentException(
                        "Constant '" + inputs.get(constantInput[c]).name() + "' does not fit " + model + ": "
                                + e.getMessage(),
                        e);
            }
        }
        return adapted;
    }

    /** The dim of the state input named like the records' batch dim. */
    private static int derivedAxis(TensorSpec in, Set<String> batchSymbols, RecurrentState.Pair pair, String model) {
        int found = -1;
        for (int d = 0; d < in.rank(); d++) {
            Dim dim = in.dims().get(d);
            if (dim.isSymbolic() && batchSymbols.contains(dim.symbol())) {
                if (found >= 0) {
                    throw new IllegalArgumentException("State input " + in + " of " + model
                            + " has the records' batch symbol at two dims; give the axis: state(\"" + pair.input()
                            + "\", \"" + pair.output() + "\", axis)");
                }
                found = d;
            }
        }
        if (found < 0) {
            throw new IllegalArgumentException("Cannot tell the batch axis of state input " + in + " of " + model
                    + ": no dim carries the records' batch symbol " + batchSymbols + "; give it: state(\""
                    + pair.input() + "\", \"" + pair.output() + "\", axis), e.g. 1 for [layers, batch, hidden]");
        }
        return found;
    }

    private static int indexOf(List<TensorSpec> specs, String name, String what, String model) {
        for (int i = 0; i < specs.size(); i++) {
            if (specs.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException(
                "Model " + model + " has no " + what + " '" + name + "'; its " + what + "s are " + specs);
    }

    private static long[] fixedShape(List<Dim> dims) {
        long[] shape = new long[dims.size()];
        for (int d = 0; d < shape.length; d++) {
            shape[d] = dims.get(d).value();
        }
        return shape;
    }

    static long product(long[] shape) {
        long p = 1;
        for (long d : shape) {
            p *= d;
        }
        return p;
    }

    int states() {
        return stateInput.length;
    }

    int stateInput(int p) {
        return stateInput[p];
    }

    String stateOutput(int p) {
        return stateOutput[p];
    }

    String stateName(int p) {
        return declared.pairs().get(p).input();
    }

    long[] stateShape(int p) {
        return stateShape[p];
    }

    ElementType stateType(int p) {
        return stateType[p];
    }

    /** The initial value of state {@code p}: shared, never to be mutated. */
    Object initial(int p) {
        return initial[p];
    }

    /** Whether {@code value} (a stored state or a model output) has state {@code p}'s type and size. */
    boolean fits(int p, Object value) {
        return value != null
                && value.getClass() == stateType[p].javaArrayType()
                && Array.getLength(value) == product(stateShape[p]);
    }

    /** Puts every constant into {@code row} (the same arrays for every row: a run shares them). */
    void putConstants(RecordInputs row) {
        for (int c = 0; c < constantInput.length; c++) {
            row.putSupplied(constantInput[c], constantValues[c], constantShape[c]);
        }
    }
}
