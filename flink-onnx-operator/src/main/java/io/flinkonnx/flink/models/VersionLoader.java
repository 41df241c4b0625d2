package io.flinkonnx.flink.models;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.versions.ModelFolder;
import io.flinkonnx.flink.versions.ServingModel;
import io.flinkonnx.flink.versions.VersionGate;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.providers.ProviderChain;
import java.io.IOException;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the loader thread of a many-model operator does when a model loads: opens the version it loads (its served
 * one, a pin gated against the signature it served, a watched folder's newest, or that newest when the served one no
 * longer loads). Updates of a loaded model go through its {@link io.flinkonnx.flink.versions.ModelVersions}.
 * Thread-safe: it keeps nothing between calls.
 */
final class VersionLoader<IN, OUT> {
    private static final Logger LOG = LoggerFactory.getLogger(VersionLoader.class);

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;
    private final ModelUpdates settings;
    private final String slot;
    private final int subtask;

    VersionLoader(
            OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, ModelUpdates settings, String slot, int subtask) {
        this.spec = spec;
        this.policy = policy;
        this.settings = settings;
        this.slot = slot;
        this.subtask = subtask;
    }

    /** The spec of {@code ref}'s model at {@code source} (its own EP chain, if it names one). */
    OnnxInferenceSpec<IN, OUT> specOf(ModelRef ref, ModelSource source) {
        OnnxInferenceSpec<IN, OUT> s = spec.withModel(source);
        return ref.providers() == null ? s : s.withProviders(ProviderChain.parse(ref.providers()));
    }

    private InferenceRunner<IN, OUT> open(ModelRef ref, ModelSource source, String label) throws Exception {
        InferenceRunner<IN, OUT> runner = new InferenceRunner<>(specOf(ref, source));
        try {
            runner.open(slot, subtask, null, policy.maxBatchSize(), policy);
            runner.version(label);
            return runner;
        } catch (Exception | Error e) {
            runner.close();
            throw e;
        }
    }

    /**
     * Opens the version {@code ref}'s model loads. With a control message ({@code pending}, one that arrived while
     * the model was not loaded here), that version, gated like an update against {@code signature} (the signature the
     * model served last, or null: the spec's model's): a version refused, or one that does not load, leaves the
     * model on the version it loads without it, and the load's report says why.
     */
    ModelTrack.Loaded<IN, OUT> load(
            ModelRef ref,
            ServingModel served,
            boolean markFolder,
            String label,
            ModelUpdate pending,
            ModelSignature signature)
            throws Exception {
        if (pending == null) {
            return load(ref, served, markFolder, label, signature);
        }
        ModelSignature against = signature;
        String noSignature = null;
        if (against == null) {
            try {
                against = specSignature();
            } catch (Exception e) {
                noSignature = "No signature to gate it against: the spec's model "
                        + spec.model().uri() + " did not load: " + e.getMessage();
            }
        }
        ModelUpdateReport report;
        VersionGate.Verdict<IN, OUT> verdict = null;
        if (noSignature == null) {
            ServingModel base = served != null ? served : new ServingModel(subtask, ref.uri(), null, label);
            verdict = judge(ref, pending, base, against);
            report = verdict.report;
        } else {
            report = report(ModelUpdateReport.Outcome.REFUSED, pending.uri, pending.version, null, noSignature);
        }
        if (report.outcome == ModelUpdateReport.Outcome.PROMOTED) {
            // an applied control message: the folder's newest now is handled (only a later one replaces the pin)
            String found = ref.watched() ? newestIdentity(ref) : null;
            return new ModelTrack.Loaded<>(verdict.runner, report.uri, report.version, found, report, pending);
        }
        ModelTrack.Loaded<IN, OUT> loaded = load(ref, served, markFolder, label, signature);
        ModelTrack.Loaded<IN, OUT> answered =
                new ModelTrack.Loaded<>(loaded.runner, loaded.uri, loaded.label, loaded.found, report, pending);
        answered.fallback = loaded.fallback;
        return answered;
    }

    /**
     * As {@link #load(ModelRef, ServingModel, boolean, String)}; when the version a watched model served no longer
     * loads (its file gone, its bytes changed), the folder's newest version, gated against {@code signature} (null:
     * the spec's model's) and reported in {@link ModelTrack.Loaded#fallback}.
     */
    ModelTrack.Loaded<IN, OUT> load(
            ModelRef ref, ServingModel served, boolean markFolder, String label, ModelSignature signature)
            throws Exception {
        try {
            return load(ref, served, markFolder, label);
        } catch (Exception e) {
            if (served == null || !ref.watched()) {
                throw e;
            }
            Optional<ModelFolder.Version> newest;
            try {
                newest = ModelFolder.newest(ref.uri());
            } catch (IOException | RuntimeException notRead) {
                e.addSuppressed(notRead);
                throw e;
            }
            if (newest.isEmpty()) {
                throw e;
            }
            ModelFolder.Version v = newest.get();
            String why = "The version it served, " + served.version + " (" + served.uri + "), did not load: "
                    + e.getMessage();
            LOG.warn("Model {}: {}; trying its folder's newest version {}", ref.uri(), why, v.label);
            ModelSignature against = signature != null ? signature : specSignature();
            VersionGate.Verdict<IN, OUT> verdict = judge(
                    ref,
                    new ModelUpdate(v.modelUri, v.sha256, v.label),
                    new ServingModel(subtask, served.uri, null, served.version),
                    against);
            if (verdict.report.outcome != ModelUpdateReport.Outcome.PROMOTED) {
                e.addSuppressed(new IOException(
                        "Its folder's newest version " + v.label + " was refused too: " + verdict.report.reason));
                throw e;
            }
            ModelTrack.Loaded<IN, OUT> loaded =
                    new ModelTrack.Loaded<>(verdict.runner, v.modelUri, verdict.report.version, v.identity());
            verdict.report.reason = why;
            loaded.fallback = verdict.report;
            return loaded;
        }
    }

    /** The signature of the spec's own model: what a model that never served here is gated against. */
    private ModelSignature specSignature() throws Exception {
        InferenceRunner<IN, OUT> runner = open(ModelRef.of(spec.model().uri()), spec.model(), "spec");
        try {
            return runner.signature();
        } finally {
            runner.close();
        }
    }

    private String newestIdentity(ModelRef ref) {
        try {
            return ModelFolder.newest(ref.uri())
                    .map(ModelFolder.Version::identity)
                    .orElse(null);
        } catch (IOException | RuntimeException e) {
            LOG.warn("Cannot read the watched model folder {}: {}", ref.uri(), e.getMessage());
            return null;
        }
    }

    /**
     * Opens the version {@code ref}'s model loads: {@code served} (pinned to its sha256) when known, else a watched
     * folder's newest, else the ref's own file labelled {@code label}.
     */
    ModelTrack.Loaded<IN, OUT> load(ModelRef ref, ServingModel served, boolean markFolder, String label)
            throws Exception {
        String found = null;
        if (served == null && ref.watched()) {
            ModelFolder.Version newest = ModelFolder.newest(ref.uri())
                    .orElseThrow(() -> new IOException("The watched model folder " + ref.uri() + " holds no version"));
            ModelSource source = ModelSource.of(newest.modelUri);
            if (newest.sha256 != null) {
                source = source.withSha256(newest.sha256);
            }
            return new ModelTrack.Loaded<>(
                    open(ref, source, newest.label), newest.modelUri, newest.label, newest.identity());
        }
        if (markFolder) {
            // a restored or pinned version: the folder's newest now is handled (a later one will be promoted)
            try {
                found = ModelFolder.newest(ref.uri())
                        .map(ModelFolder.Version::identity)
                        .orElse(null);
            } catch (IOException e) {
                LOG.warn("Cannot read the watched model folder {}: {}", ref.uri(), e.getMessage());
            }
        }
        if (served != null) {
            ModelSource source = ModelSource.of(served.uri);
            if (served.sha256 != null) {
                source = source.withSha256(served.sha256);
            }
            return new ModelTrack.Loaded<>(open(ref, source, served.version), served.uri, served.version, found);
        }
        return new ModelTrack.Loaded<>(open(ref, ref.source(), label), ref.uri(), label, found);
    }

    /**
     * Loads {@code update} for {@code ref}'s model at its load and judges it against {@code serving} with the one
     * gate of every operator ({@link VersionGate#judge}): PROMOTED (the verdict holds the open runner),
     * ALREADY_SERVING (the same bytes) or REFUSED (why).
     */
    private VersionGate.Verdict<IN, OUT> judge(
            ModelRef ref, ModelUpdate update, ServingModel serving, ModelSignature signature) {
        return VersionGate.judge(
                update,
                false,
                serving,
                signature,
                settings,
                subtask,
                (source, label) -> open(ref, source, label),
                null);
    }

    private ModelUpdateReport report(
            ModelUpdateReport.Outcome outcome, String uri, String version, String sha256, String reason) {
        return ModelUpdateReport.of(outcome, uri, version, sha256, reason, subtask);
    }
}
