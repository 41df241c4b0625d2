package io.flinkonnx.providers;

import org.apache.flink.annotation.PublicEvolving;

/** A strict chain could not register one of its execution providers. */
@PublicEvolving
public class ProviderUnavailableException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final ProviderResolution resolution;

    public ProviderUnavailableException(String message, ProviderResolution resolution) {
        super(message);
        this.resolution = resolution;
    }

    /** What was registered and skipped up to the failure. */
    public ProviderResolution resolution() {
        return resolution;
    }
}
