package io.flinkonnx.flink;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorData;
import io.flinkonnx.model.TensorSpec;
import java.util.List;
import java.util.Map;

/**
 * Runs ONNX test-data sets through a session with the operator's own conversion (type and shape checks,
 * packing into direct buffers) and compares the outputs. Each {@code input_K.pb} is one whole tensor, so
 * the signature is used without a batch axis.
 */
final class GoldenVectors {
    private final String model;
    private final OrtSession session;
    private final ModelSignature signature;
    private final TensorPacker packer;
    private final RecordInputs row;
    private final BatchOutputs outputs;

    GoldenVectors(String model, OrtSession session, ModelSignature served) {
        this.model = model;
        this.session = session;
        this.signature = served.withBatchAxis(TensorSpec.NO_BATCH_AXIS);
        this.packer = new TensorPacker(OrtRuntime.env(), signature.inputs(), 0, -1);
        this.row = new RecordInputs(model, signature.inputs());
        this.outputs = new BatchOutputs(model, signature.outputs());
    }

    /**
     * Feeds {@code set} and adds each output's comparison to {@code acc}, keyed by output name.
     *
     * @throws RecordConversionException when an input does not fit the model (type or shape): never cast
     */
    void compare(ReferenceDataSet set, Map<String, DriftAccumulator> acc, DriftTolerance tolerance,
            java.util.function.Function<TensorSpec, Integer> classes) throws OrtException {
        List<TensorSpec> inputs = signature.inputs();
        if (set.inputs().size() != inputs.size()) {
            throw new RecordConversionException(set.name() + " has " + set.inputs().size() + " inputs, model " + model
                    + " takes " + inputs.size() + " (" + RecordInputs.describe(inputs) + ")");
        }
        row.reset();
        for (int k = 0; k < inputs.size(); k++) {
            TensorData data = set.inputs().get(k);
            String name = !data.name().isEmpty() && signature.input(data.name()).isPresent()
                    ? data.name() : inputs.get(k).name();
            row.put(name, data.values(), data.dims());
        }
        Map<String, OnnxTensor> tensors = packer.pack(new RecordInputs[] {row}, 0, 1);
        try (OrtSession.Result result = session.run(tensors)) {
            outputs.load(result, 1, Map.of());
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
        for (int k = 0; k < set.outputs().size() && k < signature.outputs().size(); k++) {
            TensorSpec spec = signature.outputs().get(k);
            TensorData expected = set.outputs().get(k);
            Object reference = HalfFloats.widen(expected);
            Object actual = outputs.batchValues(spec.name());
            ElementType type = HalfFloats.isHalf(expected.type()) ? ElementType.FLOAT : expected.type();
            acc.computeIfAbsent(spec.name(), n -> new DriftAccumulator(n, type, tolerance, classes.apply(spec)))
                    .add(actual, reference);
        }
    }
}
