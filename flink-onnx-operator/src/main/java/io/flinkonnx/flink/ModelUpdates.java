package io.flinkonnx.flink;

import java.io.Serializable;
import java.time.Duration;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.util.Preconditions;

/**
 * How a batching operator takes new model versions without a restart: a watched folder polled at an
 * interval, a control stream of {@link ModelUpdate}s (see {@link OnnxInference#batched(DataStream,
 * DataStream, OnnxInferenceSpec, BatchPolicy, ModelUpdates)}), or both; and the gate a version must pass
 * before it serves.
 *
 * <pre>{@code
 * ModelUpdates updates = ModelUpdates.builder()
 *         .watch("s3://models/fraud/", Duration.ofMinutes(1))
 *         .build();
 * SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec, policy, updates);
 * scored.getSideOutput(ModelUpdateReport.TAG).print();
 * }</pre>
 *
 * <p><b>The watched folder.</b> Each version is a sub-folder ({@code v7/model.onnx}) or a file
 * ({@code fraud-7.onnx}, {@code .onnx} or {@code .ort}); names starting with {@code .} or {@code _} are
 * ignored (a version being written). The newest is the one with the highest numbers in its name, compared run
 * by run ({@code v10} after {@code v9}, {@code 2.10.0} after {@code 2.9.9}); where no name has a number, the
 * latest modification time.
 * A version folder holds one model file ({@code model.onnx} or {@code model.ort} wins when there are
 * several). A file {@code <model file>.sha256} ({@code sha256sum}'s format) or {@code sha256} beside the
 * model becomes its pin.
 *
 * <p><b>The gate</b> (every version, from either source): the model loads with every check of the
 * loader and its pin; its signature equals the serving one's (input and output names, types and shapes);
 * for a stateful model, a version whose states alone differ passes when {@link
 * Builder#resetStatesOnSignatureChange} is set (every key's state is then reset at the swap);
 * and, where the model's folder holds ONNX golden vectors ({@code test_data_set_N/input_K.pb,
 * output_K.pb}), each output is within {@link #gateTolerance()}. A version that fails is refused (a
 * {@link ModelUpdateReport}, a WARN, {@code model_updates_refused}) and the current one serves on.
 *
 * <p><b>The guarantees.</b> Loading and the gate run off the task thread, the current version scoring
 * meanwhile; the swap happens between batches, the buffer scored first by the version it was buffered
 * for; the previous session closes once the swap is done, so a slot holds two sessions of the model during
 * a load. A control message read before a checkpoint and not yet applied is kept in it. The serving version (URI and sha256) is operator state: after a failover or a
 * restart from a savepoint the subtask serves exactly that version again before the watcher resumes.
 */
@PublicEvolving
public final class ModelUpdates implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The default poll interval of a watched folder. */
    public static final Duration DEFAULT_POLL_INTERVAL = Duration.ofMinutes(1);

    private final String watchedFolder;
    private final Duration pollInterval;
    private final boolean goldenVectorsGate;
    private final DriftTolerance gateTolerance;
    private final boolean resetStatesOnSignatureChange;

    private ModelUpdates(Builder b) {
        this.watchedFolder = b.watchedFolder;
        this.pollInterval = b.pollInterval;
        this.goldenVectorsGate = b.goldenVectorsGate;
        this.gateTolerance = b.gateTolerance;
        this.resetStatesOnSignatureChange = b.resetStatesOnSignatureChange;
    }

    /**
     * Starts the updates' settings: no watched folder, a 1-minute poll interval and the golden-vector gate on
     * with {@link DriftTolerance#defaults()} (example in the class comment).
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Updates from {@code folderUri} only, polled every {@code pollInterval}, with the default gate.
     *
     * @param folderUri the watched folder, a path or any Flink file system URI (not {@code classpath:}), not null
     *     or blank
     * @param pollInterval how often the folder is listed, at least 10 ms
     * @return the updates
     * @throws IllegalArgumentException when {@code folderUri} is blank or a {@code classpath:} resource, or
     *     {@code pollInterval} is under 10 ms
     * @throws NullPointerException when {@code folderUri} or {@code pollInterval} is null
     */
    public static ModelUpdates watch(String folderUri, Duration pollInterval) {
        return builder().watch(folderUri, pollInterval).build();
    }

    /**
     * Updates from a control stream only, with the default gate.
     *
     * @return the updates, watching no folder
     */
    public static ModelUpdates fromControlStream() {
        return builder().build();
    }

    /**
     * The watched folder's URI, or null when updates come from a control stream only.
     *
     * @return the folder's URI (see {@link Builder#watch}), or null
     */
    public String watchedFolder() {
        return watchedFolder;
    }

    /**
     * How often watched folders are polled (see {@link Builder#watch} and {@link Builder#pollInterval}).
     *
     * @return the poll interval, at least 10 ms (default {@link #DEFAULT_POLL_INTERVAL})
     */
    public Duration pollInterval() {
        return pollInterval;
    }

    /**
     * Whether golden vectors in a version's folder must pass before it serves (default true).
     *
     * @return true to gate on golden vectors where a version has them (default true)
     */
    public boolean goldenVectorsGate() {
        return goldenVectorsGate;
    }

    /**
     * The tolerance of the golden-vector gate (default {@link DriftTolerance#defaults()}).
     *
     * @return the tolerance (default {@link DriftTolerance#defaults()})
     */
    public DriftTolerance gateTolerance() {
        return gateTolerance;
    }

    /**
     * Whether a stateful model's new version whose states differ from the serving version's (their shapes or
     * element types) may serve, every key's state reset to the new version's initial state at the swap (default
     * false: such a version is refused). See {@link Builder#resetStatesOnSignatureChange}.
     *
     * @return true when a version with other states takes over with every key's state reset
     */
    public boolean resetStatesOnSignatureChange() {
        return resetStatesOnSignatureChange;
    }

    @Override
    public String toString() {
        return "ModelUpdates{watch=" + watchedFolder + ", every " + pollInterval + ", goldenVectorsGate="
                + goldenVectorsGate + ", " + gateTolerance
                + (resetStatesOnSignatureChange ? ", resetStatesOnSignatureChange" : "") + "}";
    }

    /** Builds {@link ModelUpdates}. */
    @PublicEvolving
    public static final class Builder {
        private String watchedFolder;
        private Duration pollInterval = DEFAULT_POLL_INTERVAL;
        private boolean goldenVectorsGate = true;
        private DriftTolerance gateTolerance = DriftTolerance.defaults();
        private boolean resetStatesOnSignatureChange;

        private Builder() {}

        /**
         * Polls {@code folderUri} (a path or any Flink file system URI) every {@code pollInterval} for a newer
         * version (see the class documentation for the layout and the rule).
         *
         * @param folderUri the watched folder, a path or any Flink file system URI (not {@code classpath:}), not
         *     null or blank (trimmed)
         * @param pollInterval how often the folder is listed, at least 10 ms (default 1 minute)
         * @return this builder
         * @throws IllegalArgumentException when {@code folderUri} is blank or a {@code classpath:} resource, or
         *     {@code pollInterval} is under 10 ms
         * @throws NullPointerException when {@code folderUri} or {@code pollInterval} is null
         */
        public Builder watch(String folderUri, Duration pollInterval) {
            Objects.requireNonNull(folderUri, "folderUri");
            Objects.requireNonNull(pollInterval, "pollInterval");
            Preconditions.checkArgument(
                    !folderUri.isBlank() && !folderUri.startsWith("classpath:"),
                    "The watched folder must be a path or a Flink file system URI (classpath: cannot be listed),"
                            + " got '%s'",
                    folderUri);
            Preconditions.checkArgument(
                    !pollInterval.isNegative() && pollInterval.toMillis() >= 10,
                    "pollInterval must be at least 10 ms, got %s",
                    pollInterval);
            this.watchedFolder = folderUri.trim();
            this.pollInterval = pollInterval;
            return this;
        }

        /**
         * How often watched folders are polled where the folders come from elsewhere: the {@link ModelRef#watch}
         * refs of {@link OnnxInference#batchedPerModel(org.apache.flink.streaming.api.datastream.DataStream,
         * ModelSelector, OnnxInferenceSpec, BatchPolicy, ModelCache, ModelUpdates)} (default 1 minute).
         *
         * @param pollInterval how often each watched folder is listed, at least 10 ms (default 1 minute)
         * @return this builder
         * @throws IllegalArgumentException when {@code pollInterval} is under 10 ms
         * @throws NullPointerException when {@code pollInterval} is null
         */
        public Builder pollInterval(Duration pollInterval) {
            Objects.requireNonNull(pollInterval, "pollInterval");
            Preconditions.checkArgument(
                    !pollInterval.isNegative() && pollInterval.toMillis() >= 10,
                    "pollInterval must be at least 10 ms, got %s",
                    pollInterval);
            this.pollInterval = pollInterval;
            return this;
        }

        /**
         * Whether a version's golden vectors gate its promotion (default true: checked where present).
         *
         * @param enabled true to check golden vectors where a version has them, false to skip them
         * @return this builder
         */
        public Builder goldenVectorsGate(boolean enabled) {
            this.goldenVectorsGate = enabled;
            return this;
        }

        /**
         * The tolerance a version's golden vectors must meet.
         *
         * @param tolerance how far outputs may be from the golden ones, not null (default {@link
         *     DriftTolerance#defaults()})
         * @return this builder
         * @throws NullPointerException when {@code tolerance} is null
         */
        public Builder gateTolerance(DriftTolerance tolerance) {
            this.gateTolerance = Objects.requireNonNull(tolerance, "tolerance");
            return this;
        }

        /**
         * For a stateful model ({@link OnnxInference#stateful(org.apache.flink.streaming.api.datastream.KeyedStream,
         * OnnxInferenceSpec, BatchPolicy, RecurrentState, ModelUpdates)}): whether a new version whose state inputs
         * and outputs differ from the serving version's (their shapes or element types; every other input and
         * output still equal) may serve. By default the gate refuses it, since no key's state fits it. Enabled,
         * it passes the gate, and at the swap every key's state is cleared, so each key's next record starts from
         * the new version's initial state (a key's records buffered before the swap are scored by the old version
         * with their states first). The clearing visits every key of the subtask on the task thread, once per
         * such swap; it is checkpoint-consistent like the swap itself: a checkpoint holds either the old version
         * with the old states or the new one with the states it wrote since. Operators without state ignore it.
         *
         * <pre>{@code
         * ModelUpdates updates = ModelUpdates.builder()
         *         .watch("s3://models/vad/", Duration.ofMinutes(1))
         *         .resetStatesOnSignatureChange(true)
         *         .build();
         * }</pre>
         *
         * @param enabled true to let a version with other states serve, every key's state reset at its swap
         *     (default false: such a version is refused with the reason)
         * @return this builder
         */
        public Builder resetStatesOnSignatureChange(boolean enabled) {
            this.resetStatesOnSignatureChange = enabled;
            return this;
        }

        /**
         * The updates as set so far; every setter has checked its argument.
         *
         * @return the immutable updates settings
         */
        public ModelUpdates build() {
            return new ModelUpdates(this);
        }
    }
}
