package io.flinkonnx.flink;

import io.flinkonnx.model.ModelSource;
import io.flinkonnx.providers.ProviderChain;
import java.io.Serializable;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Which model scores a record, as a {@link ModelSelector} answers: a URI, optionally a sha256 pin, a version
 * label (what predictions and metrics name it by; by default the file name) and an EP chain of its own (by
 * default the spec's). Two refs are the same model when URI, pin, label and chain are equal (the same file
 * under two labels is loaded, and counted against the caps, twice).
 *
 * <pre>{@code
 * ModelRef.of("s3://models/fraud-DE.onnx").withVersion("fraud-DE-v3")
 * ModelRef.watch("s3://models/fraud-DE/")   // the folder's newest version, swapped in as new ones appear
 * }</pre>
 *
 * <p>A {@linkplain #watch watched folder} names a model whose version is the folder's newest (the layout and the
 * rule of {@link ModelUpdates}): resolved when the model loads, then polled every {@link
 * ModelUpdates#pollInterval()} of the updates given to {@link OnnxInference#batchedPerModel(
 * org.apache.flink.streaming.api.datastream.DataStream, ModelSelector, OnnxInferenceSpec, BatchPolicy,
 * ModelCache, ModelUpdates)}. Its predictions name the version that scored them.
 */
@PublicEvolving
public final class ModelRef implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String uri;
    private final String sha256;
    private final String version;
    private final String providers;
    /** Whether {@link #uri} is a watched folder (its newest version serves) rather than a model file. */
    private final boolean watched;

    private ModelRef(String uri, String sha256, String version, String providers, boolean watched) {
        this.uri = uri;
        this.sha256 = sha256;
        this.version = version;
        this.providers = providers;
        this.watched = watched;
    }

    /**
     * The model at {@code uri} (a path, {@code classpath:} resource or any Flink file system URI).
     *
     * @param uri the model file's URI, not null or blank (trimmed)
     * @return a ref to that file, labelled by its file name, on the spec's EP chain
     * @throws IllegalArgumentException when {@code uri} is blank
     * @throws NullPointerException when {@code uri} is null
     */
    public static ModelRef of(String uri) {
        ModelSource.of(uri); // the same checks as everywhere a model is named
        return new ModelRef(uri.trim(), null, null, null, false);
    }

    /**
     * The newest version in the folder {@code folderUri} (a path or any Flink file system URI; the layout of
     * {@link ModelUpdates}: {@code v7/model.onnx} or {@code fraud-7.onnx}, a {@code .sha256} file its pin). A
     * newer version is loaded, gated and swapped in while the job runs, and control messages can pin it ({@link
     * ModelUpdate#forModel}, addressed by this folder's URI). Predictions and metrics name the version.
     *
     * @param folderUri the folder's URI, a path or any Flink file system URI (not {@code classpath:}), not null or
     *     blank (trimmed)
     * @return a ref to the folder's newest version
     * @throws IllegalArgumentException when {@code folderUri} is blank or a {@code classpath:} resource
     * @throws NullPointerException when {@code folderUri} is null
     */
    public static ModelRef watch(String folderUri) {
        Objects.requireNonNull(folderUri, "folderUri");
        if (folderUri.isBlank() || folderUri.trim().startsWith("classpath:")) {
            throw new IllegalArgumentException("A watched folder must be a path or a Flink file system URI"
                    + " (classpath: cannot be listed), got '" + folderUri + "'");
        }
        return new ModelRef(folderUri.trim(), null, null, null, true);
    }

    /**
     * This model pinned to a sha256 (see {@code ModelSource.withSha256}).
     *
     * @param hex the sha256 of the model's bytes, 64 hex digits (case-insensitive), not null
     * @return a new ref; this one is unchanged
     * @throws IllegalArgumentException when {@code hex} is not 64 hex digits
     * @throws IllegalStateException when this ref is a {@linkplain #watch watched folder} (each version's pin is
     *     the sha256 file beside it)
     * @throws NullPointerException when {@code hex} is null
     */
    public ModelRef withSha256(String hex) {
        requireFile("withSha256 (a version's pin is the sha256 file beside it)");
        return new ModelRef(uri, ModelSource.of(uri).withSha256(hex).sha256().get(), version, providers, false);
    }

    /**
     * The label predictions ({@link OutputRow#modelVersion()}), dead letters and metrics name this model by.
     *
     * @param label the version label, e.g. {@code fraud-DE-v3}, not null
     * @return a new ref; this one is unchanged
     * @throws IllegalStateException when this ref is a {@linkplain #watch watched folder} (the folder names its
     *     versions)
     * @throws NullPointerException when {@code label} is null
     */
    public ModelRef withVersion(String label) {
        requireFile("withVersion (its versions are named by the folder)");
        return new ModelRef(uri, sha256, Objects.requireNonNull(label, "label"), providers, false);
    }

    private void requireFile(String what) {
        if (watched) {
            throw new IllegalStateException("A watched folder takes no " + what + ": " + uri);
        }
    }

    /**
     * An EP chain for this model only, e.g. {@code "cuda > cpu"} (checked now).
     *
     * @param chain the chain in {@link ProviderChain#parse} syntax, not null
     * @return a new ref; this one is unchanged
     * @throws IllegalArgumentException when {@code chain} names an unknown EP or option
     * @throws NullPointerException when {@code chain} is null
     */
    public ModelRef withProviders(String chain) {
        ProviderChain.parse(chain);
        return new ModelRef(uri, sha256, version, chain, watched);
    }

    /**
     * The model file's URI, or for a {@linkplain #watched() watched} ref the folder's.
     *
     * @return the URI, trimmed
     */
    public String uri() {
        return uri;
    }

    /**
     * Whether this ref is a watched folder ({@link #watch}): the model is the folder's newest version.
     *
     * @return true for a watched folder, false for a model file
     */
    public boolean watched() {
        return watched;
    }

    /**
     * Whether a control message's {@link ModelUpdate#model} addresses this model: it equals its URI (a watched
     * folder's, or a model file's) or its version label.
     *
     * @param model the {@link ModelUpdate#model} of a control message; null addresses no model
     * @return true when {@code model} equals this ref's URI or version label
     */
    public boolean isAddressedBy(String model) {
        return model != null && (model.equals(uri) || model.equals(version));
    }

    /**
     * The model's source, with its pin (a watched ref has none: its versions are found when it loads).
     *
     * @return the source of the model file, pinned when {@link #withSha256} was given
     * @throws IllegalStateException when this ref is a {@linkplain #watch watched folder}
     */
    public ModelSource source() {
        requireFile("source (its versions are found in the folder when it loads)");
        ModelSource source = ModelSource.of(uri);
        return sha256 == null ? source : source.withSha256(sha256);
    }

    /**
     * The version label, or null for the default (the model file's name).
     *
     * @return the label given to {@link #withVersion}, or null
     */
    public String version() {
        return version;
    }

    /**
     * Its own EP chain, or null for the spec's.
     *
     * @return the chain given to {@link #withProviders}, as text, or null
     */
    public String providers() {
        return providers;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof ModelRef)) {
            return false;
        }
        ModelRef r = (ModelRef) o;
        return uri.equals(r.uri)
                && Objects.equals(sha256, r.sha256)
                && Objects.equals(version, r.version)
                && Objects.equals(providers, r.providers)
                && watched == r.watched;
    }

    @Override
    public int hashCode() {
        return Objects.hash(uri, sha256, version, providers, watched);
    }

    @Override
    public String toString() {
        return (watched ? "watched " : "")
                + (version == null ? "" : version + " ")
                + uri
                + (sha256 == null ? "" : " sha256 " + sha256)
                + (providers == null ? "" : " on " + providers);
    }
}
