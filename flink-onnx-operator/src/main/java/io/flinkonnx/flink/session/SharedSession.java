package io.flinkonnx.flink.session;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.NodePlacement;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.providers.ProviderResolution;
import java.util.List;
import org.apache.flink.annotation.Internal;

/**
 * One ORT session shared by every operator of a task slot that uses the same model and settings.
 * {@link OrtSession#run} is thread-safe, so unchained operators of one slot may share it.
 */
@Internal
public final class SharedSession {
    private final SessionRegistry.Key key;
    private final OrtSession session;
    private final ModelSignature signature;
    private final ProviderResolution resolution;
    private final long loadTimeMillis;
    private final long modelSizeBytes;
    private final List<NodePlacement> placement;
    private final String placementNote;

    public SharedSession(
            SessionRegistry.Key key,
            OrtSession session,
            ModelSignature signature,
            ProviderResolution resolution,
            long loadTimeMillis,
            long modelSizeBytes,
            List<NodePlacement> placement,
            String placementNote) {
        this.key = key;
        this.session = session;
        this.signature = signature;
        this.resolution = resolution;
        this.loadTimeMillis = loadTimeMillis;
        this.modelSizeBytes = modelSizeBytes;
        this.placement = placement == null ? null : List.copyOf(placement);
        this.placementNote = placementNote;
    }

    /** Where each kernel ran in the warm-up run; null when it could not be measured ({@link #placementNote}). */
    public List<NodePlacement> placement() {
        return placement;
    }

    public String placementNote() {
        return placementNote;
    }

    public SessionRegistry.Key key() {
        return key;
    }

    public OrtSession session() {
        return session;
    }

    /** The signature as read from the model (default batch-axis rule). */
    public ModelSignature signature() {
        return signature;
    }

    public ProviderResolution resolution() {
        return resolution;
    }

    public long loadTimeMillis() {
        return loadTimeMillis;
    }

    public long modelSizeBytes() {
        return modelSizeBytes;
    }

    public String modelSha256() {
        return key.modelSha256;
    }

    public void close() throws OrtException {
        session.close();
    }
}
