package io.flinkonnx.flink.versions;

import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.flink.drift.DriftAccumulator;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.drift.GoldenVectors;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorSpec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.StringJoiner;
import org.apache.flink.annotation.Internal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a new version must pass before it serves: the serving signature, and the golden vectors in its
 * folder. (That it loads at all, with its pin and every loader check, is proved by opening it.)
 */
@Internal
public final class VersionGate {
    private static final Logger LOG = LoggerFactory.getLogger(VersionGate.class);

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

    /** What a candidate version comes to ({@link #judge}). */
    public static final class Verdict<IN, OUT> {
        /** The outcome; null when a poll's candidate changed on disk while it loaded (the next poll looks again). */
        public final ModelUpdateReport report;
        /** Open, ready to serve, the caller's to serve or close; null unless the report says PROMOTED. */
        public final InferenceRunner<IN, OUT> runner;
        /** The model could not be read (an I/O error): another try may end otherwise. */
        public final boolean readError;

        Verdict(ModelUpdateReport report, InferenceRunner<IN, OUT> runner, boolean readError) {
            this.report = report;
            this.runner = runner;
            this.readError = readError;
        }
    }

    /** Opens a candidate's runner (its spec at {@code source}, labelled {@code label}); closes it if it fails. */
    @FunctionalInterface
    public interface Opener<IN, OUT> {
        InferenceRunner<IN, OUT> open(ModelSource source, String label) throws Exception;
    }

    /**
     * Loads {@code update} and judges it against the serving version ({@code serving}, whose signature is
     * {@code signature}): ALREADY_SERVING (the same bytes; the serving file itself is judged by its bytes, with no
     * session), PROMOTED (the gate passed: {@link #check}; the verdict holds the open runner) or REFUSED (why). The
     * golden vectors are copied before the model is read and the model's file is looked at before and after, so a
     * version folder replaced meanwhile is not gated by another publication's vectors: for a poll's candidate
     * ({@code polled}) the verdict then has no report, for a control message it is refused. One gate for every
     * operator and runtime; thread-safe (it keeps nothing).
     *
     * @param seam for tests: runs once the candidate is read (opened, or found to be the serving bytes), or null
     */
    public static <IN, OUT> Verdict<IN, OUT> judge(
            ModelUpdate update,
            boolean polled,
            ServingModel serving,
            ModelSignature signature,
            ModelUpdates settings,
            int subtask,
            Opener<IN, OUT> opener,
            ModelVersions.LoadSeam seam) {
        if (update.uri == null || update.uri.isBlank()) {
            return refused(update.uri, update.version, null, "The update names no model URI", subtask, false);
        }
        String label =
                update.version == null || update.version.isBlank() ? ModelFolder.labelOf(update.uri) : update.version;
        InferenceRunner<IN, OUT> candidate = null;
        Path vectors = null;
        try {
            if (sameBytesAsServing(update, serving)) {
                if (seam != null) {
                    seam.opened(update.uri);
                }
                return new Verdict<>(
                        ModelUpdateReport.of(
                                ModelUpdateReport.Outcome.ALREADY_SERVING,
                                update.uri,
                                label,
                                serving.sha256,
                                null,
                                subtask),
                        null,
                        false);
            }
            String fileBefore = settings.goldenVectorsGate() ? ModelFolder.fileState(update.uri) : null;
            vectors = copyVectors(update.uri, settings);
            ModelSource source = ModelSource.of(update.uri);
            if (update.sha256 != null && !update.sha256.isBlank()) {
                source = source.withSha256(update.sha256);
            }
            candidate = opener.open(source, label);
            if (seam != null) {
                seam.opened(update.uri);
            }
            String sha = candidate.session().modelSha256();
            ModelUpdateReport report;
            if (vectors != null && !Objects.equals(fileBefore, ModelFolder.fileState(update.uri))) {
                if (polled) {
                    return new Verdict<>(null, null, false);
                }
                report = ModelUpdateReport.of(
                        ModelUpdateReport.Outcome.REFUSED,
                        update.uri,
                        label,
                        sha,
                        "The model's file changed while it loaded: its golden vectors may be another"
                                + " version's (send the update again)",
                        subtask);
            } else if (sha.equals(serving.sha256)) {
                report = ModelUpdateReport.of(
                        ModelUpdateReport.Outcome.ALREADY_SERVING, update.uri, label, sha, null, subtask);
            } else {
                String refusal = check(candidate, signature, serving.version, settings, vectors);
                report = ModelUpdateReport.of(
                        refusal == null ? ModelUpdateReport.Outcome.PROMOTED : ModelUpdateReport.Outcome.REFUSED,
                        update.uri,
                        label,
                        sha,
                        refusal,
                        subtask);
                if (refusal == null && statesOnlyDiffer(candidate, signature)) {
                    report.reason = "Its state inputs and outputs differ from version " + serving.version
                            + "'s: every key's state is reset at the swap (resetStatesOnSignatureChange)";
                }
            }
            InferenceRunner<IN, OUT> promoted = null;
            if (report.outcome == ModelUpdateReport.Outcome.PROMOTED) {
                promoted = candidate;
                candidate = null; // handed over
            }
            return new Verdict<>(report, promoted, false);
        } catch (Exception | LinkageError e) {
            boolean readError = e instanceof IOException
                    || e instanceof UncheckedIOException
                    || e.getCause() instanceof IOException;
            return refused(update.uri, label, null, "The model did not load: " + e.getMessage(), subtask, readError);
        } finally {
            if (candidate != null) {
                candidate.close();
            }
            if (vectors != null) {
                try {
                    deleteRecursively(vectors);
                } catch (IOException e) {
                    LOG.warn("Cannot delete the golden vectors copied to {}: {}", vectors, e.getMessage());
                }
            }
        }
    }

    private static <IN, OUT> Verdict<IN, OUT> refused(
            String uri, String version, String sha256, String reason, int subtask, boolean readError) {
        return new Verdict<>(
                ModelUpdateReport.of(ModelUpdateReport.Outcome.REFUSED, uri, version, sha256, reason, subtask),
                null,
                readError);
    }

    /**
     * Whether {@code update} names the serving version's own file and its bytes (external data included) are still
     * the serving ones: then it needs no session to be judged ALREADY_SERVING. Only the serving file is hashed, so
     * a new version is read once, by its load.
     */
    private static boolean sameBytesAsServing(ModelUpdate update, ServingModel serving) {
        if (serving == null
                || serving.sha256 == null
                || serving.uri == null
                || !ModelFolder.sameFile(update.uri, serving.uri)) {
            return false;
        }
        if (update.sha256 != null && !update.sha256.isBlank() && !update.sha256.equalsIgnoreCase(serving.sha256)) {
            return false; // pinned to other bytes: the load tells why it cannot serve
        }
        try (LocalModel local = ModelSource.of(update.uri).fetch()) {
            return local.sha256().equalsIgnoreCase(serving.sha256);
        } catch (RuntimeException e) {
            return false; // not read now: the load tries, and tells why
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
