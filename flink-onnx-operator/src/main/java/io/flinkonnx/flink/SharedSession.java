package io.flinkonnx.flink;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.providers.ProviderResolution;
import java.util.List;

/**
 * One ORT session shared by every operator of a task slot that uses the same model and settings.
 * {@link OrtSession#run} is thread-safe, so unchained operators of one slot may share it.
 */
final class SharedSession {
    private final SessionRegistry.Key key;
    private final OrtSession session;
    private final ModelSignature signature;
    private final ProviderResolution resolution;
    private final long loadTimeMillis;
    private final long modelSizeBytes;
    private final List<NodePlacement> placement;
    private final String placementNote;

    SharedSession(SessionRegistry.Key key, OrtSession session, ModelSignature signature, ProviderResolution resolution,
            long loadTimeMillis, long modelSizeBytes, List<NodePlacement> placement, String placementNote) {
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
    List<NodePlacement> placement() {
        return placement;
    }

    String placementNote() {
        return placementNote;
    }

    SessionRegistry.Key key() {
        return key;
    }

    OrtSession session() {
        return session;
    }

    /** The signature as read from the model (default batch-axis rule). */
    ModelSignature signature() {
        return signature;
    }

    ProviderResolution resolution() {
        return resolution;
    }

    long loadTimeMillis() {
        return loadTimeMillis;
    }

    long modelSizeBytes() {
        return modelSizeBytes;
    }

    String modelSha256() {
        return key.modelSha256;
    }

    void close() throws OrtException {
        session.close();
    }
}
