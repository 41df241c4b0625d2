package io.flinkonnx.flink.drift;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.tensor.BatchOutputs;
import io.flinkonnx.flink.tensor.HalfFloats;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorData;
import io.flinkonnx.model.TensorSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.annotation.Internal;

/**
 * Runs ONNX test-data sets through a session with the operator's own conversion (type and shape checks,
 * packing into direct buffers) and compares the outputs. Each {@code input_K.pb} is one whole tensor, so
 * the signature is used without a batch axis.
 */
@Internal
public final class GoldenVectors {
    private static final Pattern NUMBERED = Pattern.compile("(input|output)_(\\d+)\\.pb");

    private final String model;
    private final OrtSession session;
    private final ModelSignature signature;
    private final TensorPacker packer;
    private final RecordInputs row;
    private final BatchOutputs outputs;

    public GoldenVectors(String model, OrtSession session, ModelSignature served) {
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
    public void compare(
            ReferenceDataSet set,
            Map<String, DriftAccumulator> acc,
            DriftTolerance tolerance,
            Function<TensorSpec, Integer> classes)
            throws OrtException {
        List<TensorSpec> inputs = signature.inputs();
        if (set.inputs().size() != inputs.size()) {
            throw new RecordConversionException(
                    set.name() + " has " + set.inputs().size() + " inputs, model " + model + " takes " + inputs.size()
                            + " (" + RecordInputs.describe(inputs) + ")");
        }
        requireEveryOutput(model, set.name(), set, signature);
        row.reset();
        for (int k = 0; k < inputs.size(); k++) {
            TensorData data = set.inputs().get(k);
            String name = !data.name().isEmpty() && signature.input(data.name()).isPresent()
                    ? data.name()
                    : inputs.get(k).name();
            row.put(name, data.values(), data.dims());
        }
        Map<String, OnnxTensor> tensors = packer.pack(new RecordInputs[] {row}, 0, 1);
        try (OrtSession.Result result = session.run(tensors)) {
            outputs.load(result, 1, Map.of());
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
        for (int k = 0; k < signature.outputs().size(); k++) {
            TensorSpec spec = signature.outputs().get(k);
            TensorData expected = set.outputs().get(k);
            Object reference = HalfFloats.widen(expected);
            Object actual = outputs.batchValues(spec.name());
            ElementType type = HalfFloats.isHalf(expected.type()) ? ElementType.FLOAT : expected.type();
            acc.computeIfAbsent(spec.name(), n -> new DriftAccumulator(n, type, tolerance, classes.apply(spec)))
                    .add(actual, reference);
        }
    }

    /**
     * Reads every {@code test_data_set_*} folder below {@code folder} (or {@code folder} itself) for
     * {@code model}, refusing a set that lacks an expected output: see {@link #read}.
     */
    public static List<ReferenceDataSet> readAll(Path folder, String model, ModelSignature signature)
            throws IOException {
        List<ReferenceDataSet> sets = new ArrayList<>();
        for (Path set : ReferenceDataSet.folders(folder)) {
            sets.add(read(set, model, signature));
        }
        return sets;
    }

    /**
     * Reads one {@code test_data_set_N} folder and checks that it is complete: its {@code input_K.pb} and
     * {@code output_K.pb} files are numbered from 0 without a gap, and there is an expected output for each
     * of the model's outputs. A set that compares nothing, or fewer outputs than the model has, would pass
     * without proving anything.
     *
     * @throws IOException when a numbered file is missing (the message names it) or the set cannot be read
     */
    public static ReferenceDataSet read(Path folder, String model, ModelSignature signature) throws IOException {
        requireNoGap(folder, "input", signature.inputs());
        requireNoGap(folder, "output", signature.outputs());
        ReferenceDataSet set = ReferenceDataSet.read(folder);
        try {
            requireEveryOutput(model, folder.toString(), set, signature);
        } catch (IllegalArgumentException e) {
            throw new IOException(e.getMessage(), e);
        }
        return set;
    }

    /**
     * Fails unless {@code set} (found at {@code where}) has exactly one expected output per output of the model.
     *
     * @throws IllegalArgumentException naming the missing {@code output_K.pb} files and outputs
     */
    public static void requireEveryOutput(String model, String where, ReferenceDataSet set, ModelSignature signature) {
        List<TensorSpec> outputs = signature.outputs();
        int have = set.outputs().size();
        if (have < outputs.size()) {
            List<String> missing = new ArrayList<>();
            for (int k = have; k < outputs.size(); k++) {
                missing.add("output_" + k + ".pb (output '" + outputs.get(k).name() + "')");
            }
            throw new IllegalArgumentException(where + " is missing expected output " + String.join(", ", missing)
                    + ": model " + model + " has " + outputs.size() + " output(s) (" + describe(outputs) + ") and the"
                    + " set has " + have + "; every output needs its output_K.pb, or nothing is compared for it");
        }
        if (have > outputs.size()) {
            throw new IllegalArgumentException(where + " has " + have + " expected outputs but model " + model
                    + " has " + outputs.size() + " (" + describe(outputs) + "); remove output_" + outputs.size()
                    + ".pb and beyond, or verify the model they belong to");
        }
    }

    /** Fails when {@code output_K.pb} (or input) exists for some K but not for a lower one. */
    private static void requireNoGap(Path folder, String kind, List<TensorSpec> specs) throws IOException {
        TreeSet<Integer> present = new TreeSet<>();
        if (Files.isDirectory(folder)) {
            try (Stream<Path> children = Files.list(folder)) {
                for (Path p : children.collect(Collectors.toList())) {
                    Matcher m = NUMBERED.matcher(p.getFileName().toString());
                    if (m.matches() && m.group(1).equals(kind)) {
                        present.add(Integer.parseInt(m.group(2)));
                    }
                }
            }
        }
        if (present.isEmpty()) {
            return; // counted against the model's inputs/outputs by the caller, with the model's names
        }
        for (int k = 0; k < present.last(); k++) {
            if (!present.contains(k)) {
                String which =
                        k < specs.size() ? " (" + kind + " '" + specs.get(k).name() + "')" : "";
                throw new IOException(folder + " has " + kind + "_" + present.last() + ".pb but no " + kind + "_" + k
                        + ".pb" + which + ": " + kind + " files are numbered from 0 in the model's " + kind
                        + " order, and a missing one must not shift the others onto the wrong " + kind);
            }
        }
    }

    private static String describe(List<TensorSpec> specs) {
        return specs.stream().map(TensorSpec::name).collect(Collectors.joining(", "));
    }
}
