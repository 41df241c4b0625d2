package io.flinkonnx.flink.versions;

import org.apache.flink.annotation.Internal;

/**
 * The watched folder's version a subtask last handled (promoted, refused or found serving), as kept in operator
 * state: after a restore the watcher does not load it again, so a failover does not undo a control-stream
 * rollback by promoting the folder's newest version anew. A Flink POJO.
 */
@Internal
public class FolderMark {
    /** The subtask that handled it (taken with that subtask's serving entry after rescaling). */
    public int subtask;

    /** {@link ModelFolder.Version#identity()} of the version handled. */
    public String identity;

    public FolderMark() {}

    public FolderMark(int subtask, String identity) {
        this.subtask = subtask;
        this.identity = identity;
    }

    @Override
    public String toString() {
        return identity + " (subtask " + subtask + ")";
    }
}
