package io.flinkonnx.providers;

import ai.onnxruntime.OrtSession;
import java.util.List;
import org.apache.flink.annotation.PublicEvolving;

/**
 * ORT {@link OrtSession.SessionOptions} with the chain's EPs added, plus the native provider-option
 * objects they were built from (which the session options do not own) and the {@link ProviderResolution}.
 * Close it once the session is created: ORT copies what it needs.
 */
@PublicEvolving
public final class ConfiguredSessionOptions implements AutoCloseable {
    private final OrtSession.SessionOptions options;
    private final List<AutoCloseable> providerOptions;
    private final ProviderResolution resolution;

    ConfiguredSessionOptions(
            OrtSession.SessionOptions options, List<AutoCloseable> providerOptions, ProviderResolution resolution) {
        this.options = options;
        this.providerOptions = List.copyOf(providerOptions);
        this.resolution = resolution;
    }

    public OrtSession.SessionOptions options() {
        return options;
    }

    public ProviderResolution resolution() {
        return resolution;
    }

    @Override
    public void close() {
        SessionOptionsFactory.closeAll(providerOptions, options);
    }
}
