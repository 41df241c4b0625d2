package io.flinkonnx.flink;

import java.io.Serializable;
import java.time.Duration;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.util.Preconditions;

/**
 * How many models one subtask of {@link OnnxInference#batchedPerModel} keeps loaded: at most
 * {@code maxModels} sessions and {@code maxModelBytes} of resident memory: what each session cost the
 * process's resident set when it was created and ran its warm-up, measured at its first load and learnt per
 * model (ORT keeps pre-packed weights and an arena, often 2-3x the file; the file size, external data
 * included, stands in only where nothing could be measured: no {@code /proc}). The least recently
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

    /**
     * Starts a cache from the defaults of {@link #defaults()} (example in the class comment).
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * 8 models, 1 GiB, 1024 waiting records, 1 s backoff.
     *
     * @return the default cache
     */
    public static ModelCache defaults() {
        return builder().build();
    }

    /**
     * Sessions a subtask keeps open at most.
     *
     * @return the number of models, >= 1 (default 8)
     */
    public int maxModels() {
        return maxModels;
    }

    /**
     * Resident bytes of loaded models (measured per session, else the files' sizes) a subtask keeps at most.
     *
     * @return the bound in bytes, >= 1 (default 1 GiB)
     */
    public long maxModelBytes() {
        return maxModelBytes;
    }

    /**
     * Records that may wait for their model to load before the operator waits too.
     *
     * @return the number of records, >= 1 (default 1024)
     */
    public int maxRecordsWaitingForLoad() {
        return maxRecordsWaitingForLoad;
    }

    /**
     * The wait before a model that failed to load is tried again (doubling, at most 10 times this).
     *
     * @return the first backoff, >= 0 (default 1 s)
     */
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

        /**
         * Sessions a subtask keeps open at most (at least 1).
         *
         * @param models the number of models, at least 1 (default 8)
         * @return this builder
         * @throws IllegalArgumentException when {@code models} is below 1
         */
        public Builder maxModels(int models) {
            Preconditions.checkArgument(models >= 1, "maxModels must be at least 1, got %s", models);
            this.maxModels = models;
            return this;
        }

        /**
         * Resident bytes of loaded models (each session's measured footprint, else its files' size) a subtask
         * keeps at most; one model may exceed it (it is loaded alone).
         *
         * @param bytes the bound in bytes, at least 1 (default 1 GiB)
         * @return this builder
         * @throws IllegalArgumentException when {@code bytes} is 0 or negative
         */
        public Builder maxModelBytes(long bytes) {
            Preconditions.checkArgument(bytes >= 1, "maxModelBytes must be positive, got %s", bytes);
            this.maxModelBytes = bytes;
            return this;
        }

        /**
         * Records that may wait for their model to load before the operator waits too (at least 1).
         *
         * @param records the number of records, at least 1 (default 1024)
         * @return this builder
         * @throws IllegalArgumentException when {@code records} is below 1
         */
        public Builder maxRecordsWaitingForLoad(int records) {
            Preconditions.checkArgument(records >= 1, "maxRecordsWaitingForLoad must be at least 1, got %s", records);
            this.maxRecordsWaitingForLoad = records;
            return this;
        }

        /**
         * The wait before a model that failed to load is tried again (doubling, at most 10 times this).
         *
         * @param backoff the first wait, zero or positive (default 1 s)
         * @return this builder
         * @throws IllegalArgumentException when {@code backoff} is null or negative
         */
        public Builder retryBackoff(Duration backoff) {
            Preconditions.checkArgument(
                    backoff != null && !backoff.isNegative(), "retryBackoff must be >= 0, got %s", backoff);
            this.retryBackoff = backoff;
            return this;
        }

        /**
         * Builds the cache settings; every setting was checked as it was set.
         *
         * @return the immutable cache settings
         */
        public ModelCache build() {
            return new ModelCache(this);
        }
    }
}
