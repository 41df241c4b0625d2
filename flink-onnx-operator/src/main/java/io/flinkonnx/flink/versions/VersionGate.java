package io.flinkonnx.flink.versions;

import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.flink.drift.DriftAccumulator;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.drift.GoldenVectors;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.StringJoiner;
import org.apache.flink.annotation.Internal;

/**
 * What a new version must pass before it serves: the serving signature, and the golden vectors in its
 * folder. (That it loads at all, with its pin and every loader check, is proved by opening it.)
 */
@Internal
public final class VersionGate {
    private VersionGate() {}

    /**
     * Null when {@code candidate} may serve; else why not. {@code vectors}: the golden vectors of its folder,
     * copied before its model was read (see {@link #copyVectors}), or null.
     */
    public static String check(
            InferenceRunner<?, ?> candidate,
            ModelSignature serving,
            String servingVersion,
            ModelUpdates settings,
            Path vectors)
            throws IOException {
        ModelSignature offered = candidate.signature();
        if (!sameSignature(offered, serving)) {
            boolean statesOnly = statesOnlyDiffer(candidate, serving);
            if (!statesOnly || !settings.resetStatesOnSignatureChange()) {
                return "Its signature differs from the serving version " + servingVersion + "'s: inputs "
                        + offered.inputs() + " and outputs " + offered.outputs() + " where " + serving.inputs()
                        + " and " + serving.outputs() + " serve"
                        + (statesOnly
                                ? " (its state inputs and outputs alone differ: no key's state fits it;"
                                        + " ModelUpdates.Builder.resetStatesOnSignatureChange(true) lets such a"
                                        + " version serve, every key's state reset at the swap)"
                                : " (a new signature needs a new job)");
            }
        }
        if (vectors == null) {
            return null;
        }
        String folder = ModelFolder.folderOf(candidate.spec().model().uri());
        Path local = vectors;
        {
            String model = candidate.modelName();
            List<ReferenceDataSet> sets;
            try {
                sets = GoldenVectors.readAll(local, model, candidate.session().signature());
            } catch (IOException | RuntimeException e) {
                return "Its golden vectors in " + folder + " cannot be read: " + e.getMessage();
            }
            Map<String, DriftAccumulator> acc = new LinkedHashMap<>();
            GoldenVectors golden = new GoldenVectors(
                    model, candidate.session().session(), candidate.session().signature());
            try {
                for (ReferenceDataSet set : sets) {
                    golden.compare(set, acc, settings.gateTolerance(), DriftMonitor::classes);
                }
            } catch (Exception e) {
                return "Its golden vectors in " + folder + " do not run: " + e.getMessage();
            }
            StringJoiner outside = new StringJoiner("; ");
            for (DriftAccumulator a : acc.values()) {
                OutputDrift d = a.result();
                if (!d.withinTolerance) {
                    outside.add(d.toString());
                }
            }
            return outside.length() == 0
                    ? null
                    : "Its outputs on the golden vectors in " + folder + " (" + sets.size() + " sets) are outside "
                            + settings.gateTolerance() + ": " + outside;
        }
    }

    /** Whether two signatures have the same input and output names, types and shapes. */
    public static boolean sameSignature(ModelSignature a, ModelSignature b) {
        return a.inputs().equals(b.inputs()) && a.outputs().equals(b.outputs());
    }

    /**
     * Whether {@code candidate}'s signature differs from {@code serving} in its state inputs and outputs alone (see
     * {@link io.flinkonnx.flink.engine.SuppliedInputs#stateTensors()}): false for a model without states.
     */
    public static boolean statesOnlyDiffer(InferenceRunner<?, ?> candidate, ModelSignature serving) {
        Set<String> states = candidate.suppliedInputs() == null
                ? Set.of()
                : candidate.suppliedInputs().stateTensors();
        ModelSignature offered = candidate.signature();
        return !states.isEmpty()
                && !sameSignature(offered, serving)
                && withoutStates(offered.inputs(), states).equals(withoutStates(serving.inputs(), states))
                && withoutStates(offered.outputs(), states).equals(withoutStates(serving.outputs(), states));
    }

    private static List<TensorSpec> withoutStates(List<TensorSpec> specs, Set<String> states) {
        List<TensorSpec> kept = new ArrayList<>();
        for (TensorSpec s : specs) {
            if (!states.contains(s.name())) {
                kept.add(s);
            }
        }
        return kept;
    }

    /**
     * The golden vectors beside {@code modelUri}, copied into a local folder (the caller deletes it with {@link
     * #deleteRecursively}), or null when the gate is off or there are none. Copied before the model is read, so
     * that a check of the model's file afterwards tells whether both are of one publication.
     */
    public static Path copyVectors(String modelUri, ModelUpdates settings) throws IOException {
        String folder = settings.goldenVectorsGate() ? ModelFolder.folderOf(modelUri) : null;
        if (folder == null) {
            return null;
        }
        Path local = Files.createTempDirectory("flink-onnx-gate-");
        try {
            if (ModelFolder.copyGoldenVectors(folder, local) > 0) {
                Path copied = local;
                local = null;
                return copied;
            }
            return null;
        } finally {
            if (local != null) {
                deleteRecursively(local);
            }
        }
    }

    public static void deleteRecursively(Path dir) throws IOException {
        try (var walk = Files.walk(dir)) {
            walk.sorted(java.util.Comparator.reverseOrder())
                    .forEach(p -> p.toFile().delete());
        }
    }
}
