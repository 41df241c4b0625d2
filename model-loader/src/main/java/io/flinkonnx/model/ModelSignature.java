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
                format,
                irVersion,
                opsetImports,
                producerName,
                producerVersion,
                inputs.stream().map(set).collect(Collectors.toList()),
                outputs.stream().map(set).collect(Collectors.toList()));
    }

    @Override
    public String toString() {
        return "ModelSignature{" + format + ", ir=" + irVersion + ", opsets=" + opsetImports + ", producer="
                + producerName + " " + producerVersion + ", inputs=" + inputs + ", outputs=" + outputs + "}";
    }
}
