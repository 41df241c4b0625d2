package io.flinkonnx.flink.models;

import org.apache.flink.annotation.Internal;

/**
 * One entry of a many-model operator's versions in operator state (a Flink POJO): a model's serving version and
 * watched-folder mark ({@link #TRACK}), a control message read but not yet applied to it ({@link #PENDING}), or the
 * last control message for an address, for models not seen yet ({@link #PIN}).
 */
@Internal
public class ModelVersionEntry {
    public static final String TRACK = "track";
    public static final String PENDING = "pending";
    public static final String PIN = "pin";

    /** The subtask that wrote it (after rescaling a subtask takes its own entries of a model, else the lowest's). */
    public int subtask;

    /** {@link #TRACK}, {@link #PENDING} or {@link #PIN}. */
    public String kind;
    /** The model's key ({@link ModelTrack#keyOf}); for a pin, the address the message named. */
    public String model;
    /** The model's ref URI (a watched folder's or a model file's) and label, which control messages address. */
    public String refUri;

    public String refVersion;
    /** The version: served (a track), to apply (pending), or pinned. */
    public String uri;

    public String sha256;
    public String version;
    /** The watched folder's version handled last (a track), or null. */
    public String found;
    /** The order of pending messages and pins. */
    public long seq;

    public ModelVersionEntry() {}

    @Override
    public String toString() {
        return kind + " " + model + ": " + version + " (" + uri + ", sha256 " + sha256 + ") subtask " + subtask;
    }
}
