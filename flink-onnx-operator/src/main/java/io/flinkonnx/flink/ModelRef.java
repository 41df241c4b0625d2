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
 * }</pre>
 */
@PublicEvolving
public final class ModelRef implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String uri;
    private final String sha256;
    private final String version;
    private final String providers;

    private ModelRef(String uri, String sha256, String version, String providers) {
        this.uri = uri;
        this.sha256 = sha256;
        this.version = version;
        this.providers = providers;
    }

    /** The model at {@code uri} (a path, {@code classpath:} resource or any Flink file system URI). */
    public static ModelRef of(String uri) {
        ModelSource.of(uri); // the same checks as everywhere a model is named
        return new ModelRef(uri.trim(), null, null, null);
    }

    /** This model pinned to a sha256 (see {@code ModelSource.withSha256}). */
    public ModelRef withSha256(String hex) {
        return new ModelRef(uri, ModelSource.of(uri).withSha256(hex).sha256().get(), version, providers);
    }

    /** The label predictions ({@link OutputRow#modelVersion()}), dead letters and metrics name this model by. */
    public ModelRef withVersion(String label) {
        return new ModelRef(uri, sha256, Objects.requireNonNull(label, "label"), providers);
    }

    /** An EP chain for this model only, e.g. {@code "cuda > cpu"} (checked now). */
    public ModelRef withProviders(String chain) {
        ProviderChain.parse(chain);
        return new ModelRef(uri, sha256, version, chain);
    }

    public String uri() {
        return uri;
    }

    /** The model's source, with its pin. */
    public ModelSource source() {
        ModelSource source = ModelSource.of(uri);
        return sha256 == null ? source : source.withSha256(sha256);
    }

    /** The version label, or null for the default (the model file's name). */
    public String version() {
        return version;
    }

    /** Its own EP chain, or null for the spec's. */
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
                && Objects.equals(providers, r.providers);
    }

    @Override
    public int hashCode() {
        return Objects.hash(uri, sha256, version, providers);
    }

    @Override
    public String toString() {
        return (version == null ? "" : version + " ")
                + uri
                + (sha256 == null ? "" : " sha256 " + sha256)
                + (providers == null ? "" : " on " + providers);
    }
}
