package io.flinkonnx.flink.models;

import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.versions.ServingModel;
import io.flinkonnx.model.ModelSignature;
import java.util.ArrayList;
import java.util.List;

/**
 * The versions of one updatable model of a many-model operator (a {@linkplain ModelRef#watch watched folder}, or a
 * model a control message addressed): the version it serves, the watched folder's version handled last and the
 * control messages not yet applied. It outlives the model's session (an evicted model loads the same version
 * again) and is operator state, so a restore serves the version the checkpoint names. While the model is loaded its
 * {@link io.flinkonnx.flink.versions.ModelVersions} keeps these (and loads its updates); they come back here when it
 * unloads and at each checkpoint. Task thread only.
 */
final class ModelTrack {
    /** The model's key in state. */
    final String key;
    /** The model's ref URI and label, which control messages address (known from state before the ref is seen). */
    final String refUri;

    final String refVersion;
    /** The version it serves, or loads next; null until its first load tells (the ref's own file, the newest). */
    ServingModel served;
    /** {@code ModelFolder.Version.identity()} of the watched folder's version handled last: not promoted again. */
    String found;
    /** Control messages read and not yet applied, in arrival order (the first may be loading). */
    final List<ModelUpdate> pending = new ArrayList<>();
    /** Restored from a checkpoint and not loaded since: its first load reports RESTORED. */
    boolean restored;
    /** The signature of the version it served last on this subtask: a version it loads next is gated against it. */
    ModelSignature signature;

    ModelTrack(String key, String refUri, String refVersion) {
        this.key = key;
        this.refUri = refUri;
        this.refVersion = refVersion;
    }

    static ModelTrack of(ModelRef ref) {
        return new ModelTrack(keyOf(ref), ref.uri(), ref.version());
    }

    /** Whether a control message naming {@code model} is for this track's model. */
    boolean addressedBy(String model) {
        return model != null && (model.equals(refUri) || model.equals(refVersion));
    }

    /** A model's key in operator state: every field that tells two refs apart. */
    static String keyOf(ModelRef ref) {
        String sha = ref.watched() ? null : ref.source().sha256().orElse(null);
        return (ref.watched() ? "watch" : "file") + "|" + ref.uri() + "|" + sha + "|" + ref.version() + "|"
                + ref.providers();
    }

    /** A version loaded on the loader thread for a model's (re)load: the runner and what it serves. */
    static final class Loaded<IN, OUT> {
        final InferenceRunner<IN, OUT> runner;
        final String uri;
        final String label;
        /** The watched folder's newest version seen at the load, or null. */
        final String found;
        /** The outcome of a control message gated at this load, or null. */
        final ModelUpdateReport report;
        /** The control message this load answered (it and those before it are applied), or null. */
        final ModelUpdate control;
        /** A watched folder's newest version loaded because the one the model served no longer loads, or null. */
        ModelUpdateReport fallback;

        Loaded(InferenceRunner<IN, OUT> runner, String uri, String label, String found) {
            this(runner, uri, label, found, null, null);
        }

        Loaded(
                InferenceRunner<IN, OUT> runner,
                String uri,
                String label,
                String found,
                ModelUpdateReport report,
                ModelUpdate control) {
            this.runner = runner;
            this.uri = uri;
            this.label = label;
            this.found = found;
            this.report = report;
            this.control = control;
        }
    }
}
