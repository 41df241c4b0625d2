package io.flinkonnx.flink;

import java.io.Serializable;
import java.time.Duration;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.util.Preconditions;

/**
 * How many models one subtask of {@link OnnxInference#batchedPerModel} keeps loaded: at most
 * {@code maxModels} sessions and {@code maxModelBytes} of model bytes (the model files' sizes, external
 * data included: an estimate of the session's memory, which is of that order on CPU). The least recently
 * used model is evicted when a new one needs room (its buffered records are scored first); a later record
 * loads it again. Records of a model that is loading wait, at most {@code maxRecordsWaitingForLoad} of them
 * (then the operator waits: backpressure); a model that fails to load sends its records to the dead
 * letters and is tried again after {@code retryBackoff}, doubling up to 10 times that.
 *
 * <pre>{@code
 * ModelCache cache = ModelCache.builder().maxModels(16).maxModelBytes(2L << 30).build();
 * }</pre>
 */
@PublicEvolving
public final class ModelCache implements Serializable {
    private static final long serialVersionUID = 1L;

    private final int maxModels;
    private final long maxModelBytes;
    private final int maxRecordsWaitingForLoad;
    private final Duration retryBackoff;

    private ModelCache(Builder b) {
        this.maxModels = b.maxModels;
        this.maxModelBytes = b.maxModelBytes;
        this.maxRecordsWaitingForLoad = b.maxRecordsWaitingForLoad;
        this.retryBackoff = b.retryBackoff;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** 8 models, 1 GiB, 1024 waiting records, 1 s backoff. */
    public static ModelCache defaults() {
        return builder().build();
    }

    public int maxModels() {
        return maxModels;
    }

    public long maxModelBytes() {
        return maxModelBytes;
    }

    public int maxRecordsWaitingForLoad() {
        return maxRecordsWaitingForLoad;
    }

    public Duration retryBackoff() {
        return retryBackoff;
    }

    @Override
    public String toString() {
        return "ModelCache{maxModels=" + maxModels + ", maxModelBytes=" + maxModelBytes + ", maxRecordsWaitingForLoad="
                + maxRecordsWaitingForLoad + ", retryBackoff=" + retryBackoff + "}";
    }

    /** Builds {@link ModelCache}. */
    @PublicEvolving
    public static final class Builder {
        private int maxModels = 8;
        private long maxModelBytes = 1L << 30;
        private int maxRecordsWaitingForLoad = 1024;
        private Duration retryBackoff = Duration.ofSeconds(1);

        private Builder() {}

        /** Sessions a subtask keeps open at most (at least 1). */
        public Builder maxModels(int models) {
            Preconditions.checkArgument(models >= 1, "maxModels must be at least 1, got %s", models);
            this.maxModels = models;
            return this;
        }

        /** Model bytes (files, external data included) a subtask keeps loaded at most; one model may exceed it. */
        public Builder maxModelBytes(long bytes) {
            Preconditions.checkArgument(bytes >= 1, "maxModelBytes must be positive, got %s", bytes);
            this.maxModelBytes = bytes;
            return this;
        }

        /** Records that may wait for their model to load before the operator waits too (at least 1). */
        public Builder maxRecordsWaitingForLoad(int records) {
            Preconditions.checkArgument(records >= 1, "maxRecordsWaitingForLoad must be at least 1, got %s", records);
            this.maxRecordsWaitingForLoad = records;
            return this;
        }

        /** The wait before a model that failed to load is tried again (doubling, at most 10 times this). */
        public Builder retryBackoff(Duration backoff) {
            Preconditions.checkArgument(
                    backoff != null && !backoff.isNegative(), "retryBackoff must be >= 0, got %s", backoff);
            this.retryBackoff = backoff;
            return this;
        }

        public ModelCache build() {
            return new ModelCache(this);
        }
    }
}
