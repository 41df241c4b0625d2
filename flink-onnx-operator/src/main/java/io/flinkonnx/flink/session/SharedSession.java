package io.flinkonnx.flink.session;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.NodePlacement;
import io.flinkonnx.flink.placement.PlacementProbe;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.providers.ProviderResolution;
import java.nio.file.Path;
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
    private volatile long measuredResidentBytes;
    private volatile List<NodePlacement> placement;
    private volatile String placementNote;
    /** The profile folder while placement waits for the first real run, else null. */
    private Path pendingProfileDir;

    public SharedSession(
            SessionRegistry.Key key,
            OrtSession session,
            ModelSignature signature,
            ProviderResolution resolution,
            long loadTimeMillis,
            long modelSizeBytes,
            List<NodePlacement> placement,
            String placementNote,
            Path pendingProfileDir) {
        this.key = key;
        this.session = session;
        this.signature = signature;
        this.resolution = resolution;
        this.loadTimeMillis = loadTimeMillis;
        this.modelSizeBytes = modelSizeBytes;
        this.placement = placement == null ? null : List.copyOf(placement);
        this.placementNote = placementNote;
        this.pendingProfileDir = pendingProfileDir;
    }

    /** Whether placement waits for the session's first successful real run (the warm-up could not run). */
    public synchronized boolean placementPending() {
        return pendingProfileDir != null;
    }

    /**
     * After a successful real run: reads the placement from ORT's profile of the runs so far, once for all
     * users of the session. Returns whether this call measured it.
     */
    public synchronized boolean completePlacementFromRun() {
        if (pendingProfileDir == null) {
            return false;
        }
        PlacementProbe.Placement measured = PlacementProbe.fromProfile(session);
        placement = measured.nodes == null ? null : List.copyOf(measured.nodes);
        placementNote = measured.nodes == null ? measured.note : null;
        SessionLoader.deleteRecursively(pendingProfileDir);
        pendingProfileDir = null;
        return true;
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

    void measuredResidentBytes(long bytes) {
        this.measuredResidentBytes = bytes;
    }

    /**
     * The resident memory this session costs the process, as measured when it was created and first run
     * ({@link ResidentMemory}), never less than the model file's size (a reading that others' frees made small),
     * and that size where nothing could be measured.
     */
    public long residentBytes() {
        return Math.max(measuredResidentBytes, modelSizeBytes);
    }

    /** The measured resident bytes, 0 when nothing could be measured. */
    public long measuredResidentBytes() {
        return measuredResidentBytes;
    }

    public String modelSha256() {
        return key.modelSha256;
    }

    public void close() throws OrtException {
        synchronized (this) {
            if (pendingProfileDir != null) {
                try {
                    session.endProfiling();
                } catch (OrtException | RuntimeException ignored) {
                    // closing: the profile is not wanted any more
                }
                SessionLoader.deleteRecursively(pendingProfileDir);
                pendingProfileDir = null;
            }
        }
        session.close();
    }
}
