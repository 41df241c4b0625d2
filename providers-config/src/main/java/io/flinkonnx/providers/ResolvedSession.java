package io.flinkonnx.providers;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A session created by {@link SessionFactory} and the {@link ProviderResolution} it ended with. Closing
 * it closes the session; a caller that keeps the session and drops this holder must close the session
 * itself.
 */
@PublicEvolving
public final class ResolvedSession implements AutoCloseable {
    private final OrtSession session;
    private final ProviderResolution resolution;

    ResolvedSession(OrtSession session, ProviderResolution resolution) {
        this.session = Objects.requireNonNull(session, "session");
        this.resolution = Objects.requireNonNull(resolution, "resolution");
    }

    public OrtSession session() {
        return session;
    }

    /** Every EP of the chain: registered, skipped when added, or dropped after it failed session creation. */
    public ProviderResolution resolution() {
        return resolution;
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
