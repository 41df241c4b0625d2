package io.flinkonnx.flink.versions;

import org.apache.flink.annotation.Internal;

/**
 * The version a subtask serves, as kept in operator state: restored exactly (URI pinned to the sha256)
 * after a failover or from a savepoint. A Flink POJO.
 */
@Internal
public class ServingModel {
    /** The subtask that served it (after rescaling, a subtask takes its own index's entry if there is one). */
    public int subtask;

    public String uri;
    public String sha256;
    public String version;

    public ServingModel() {}

    public ServingModel(int subtask, String uri, String sha256, String version) {
        this.subtask = subtask;
        this.uri = uri;
        this.sha256 = sha256;
        this.version = version;
    }

    @Override
    public String toString() {
        return version + " (" + uri + ", sha256 " + sha256 + ")";
    }
}
