package io.flinkonnx.model;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;

/**
 * What a model is, read without running it: format, IR version, opset imports, producer, and the graph's
 * inputs (initializers excluded) and outputs.
 *
 * <p>For ONNX files this comes from the protobuf; for {@code .ort} files (which carry no protobuf) it
 * comes from the ONNX Runtime session, and IR/opset/producer are unknown (0 / empty).
 */
@PublicEvolving
public final class ModelSignature implements Serializable {
    private static final long serialVersionUID = 1L;

    private final ModelFormat format;
    private final long irVersion;
    private final Map<String, Long> opsetImports;
    private final String producerName;
    private final String producerVersion;
    private final List<TensorSpec> inputs;
    private final List<TensorSpec> outputs;
    /** Per graph input that indexes a lookup table (see {@link #lookupTableRows}): the table's rows. */
    private final Map<String, Long> lookupTableRows;

    public ModelSignature(
            ModelFormat format,
            long irVersion,
            Map<String, Long> opsetImports,
            String producerName,
            String producerVersion,
            List<TensorSpec> inputs,
            List<TensorSpec> outputs) {
        this.format = Objects.requireNonNull(format, "format");
        this.irVersion = irVersion;
        this.opsetImports = Map.copyOf(opsetImports);
        this.producerName = Objects.requireNonNull(producerName, "producerName");
        this.producerVersion = Objects.requireNonNull(producerVersion, "producerVersion");
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
        this.lookupTableRows = Map.of();
    }

    private ModelSignature(
            ModelSignature base, List<TensorSpec> inputs, List<TensorSpec> outputs, Map<String, Long> rows) {
        this.format = base.format;
        this.irVersion = base.irVersion;
        this.opsetImports = base.opsetImports;
        this.producerName = base.producerName;
        this.producerVersion = base.producerVersion;
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
        this.lookupTableRows = Map.copyOf(rows);
    }

    /**
     * This signature knowing, per graph input, the rows of the lookup table the input indexes (see {@link
     * #lookupTableRows(String)}).
     *
     * @param rows input name -> rows of the table a {@code Gather} over that input reads
     * @return a new signature; this one is unchanged
     */
    public ModelSignature withLookupTableRows(Map<String, Long> rows) {
        return new ModelSignature(this, inputs, outputs, rows);
    }

    /**
     * The number of rows of the table graph input {@code input} indexes, when the model reads one: a {@code
     * Gather} (axis 0) whose indices are the input (directly or through a {@code Cast}) and whose data is an
     * initializer, as a text model's embedding table indexed by {@code input_ids}. Indices must stay below it.
     * Unknown for {@code .ort} files (no protobuf to read).
     *
     * @param input the graph input's name
     * @return the table's first dimension, or empty when the input indexes no initializer table
     */
    public Optional<Long> lookupTableRows(String input) {
        return lookupTableRows == null ? Optional.empty() : Optional.ofNullable(lookupTableRows.get(input));
    }

    public ModelFormat format() {
        return format;
    }

    /** {@code ModelProto.ir_version}; 0 when unknown (ORT format). */
    public long irVersion() {
        return irVersion;
    }

    /** Opset per domain; the default ONNX domain is {@code ""}. */
    public Map<String, Long> opsetImports() {
        return opsetImports;
    }

    public String producerName() {
        return producerName;
    }

    public String producerVersion() {
        return producerVersion;
    }

    /** Graph inputs the caller must feed (initializers excluded), in graph order. */
    public List<TensorSpec> inputs() {
        return inputs;
    }

    public List<TensorSpec> outputs() {
        return outputs;
    }

    public Optional<TensorSpec> input(String name) {
        return inputs.stream().filter(t -> t.name().equals(name)).findFirst();
    }

    public Optional<TensorSpec> output(String name) {
        return outputs.stream().filter(t -> t.name().equals(name)).findFirst();
    }

    /**
     * This signature with the batch axis of every input and output set to {@code axis} where the tensor
     * has that many dimensions (and to none elsewhere); {@link TensorSpec#NO_BATCH_AXIS} removes it.
     */
    public ModelSignature withBatchAxis(int axis) {
        UnaryOperator<TensorSpec> set =
                t -> t.withBatchAxis(axis >= 0 && axis < t.rank() ? axis : TensorSpec.NO_BATCH_AXIS);
        return new ModelSignature(
                this,
                inputs.stream().map(set).collect(Collectors.toList()),
                outputs.stream().map(set).collect(Collectors.toList()),
                lookupTableRows == null ? Map.of() : lookupTableRows);
    }

    @Override
    public String toString() {
        return "ModelSignature{" + format + ", ir=" + irVersion + ", opsets=" + opsetImports + ", producer="
                + producerName + " " + producerVersion + ", inputs=" + inputs + ", outputs=" + outputs + "}";
    }
}
