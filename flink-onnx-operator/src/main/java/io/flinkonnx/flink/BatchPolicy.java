package io.flinkonnx.flink;

import static org.apache.flink.util.Preconditions.checkArgument;
import static org.apache.flink.util.Preconditions.checkNotNull;

import java.io.Serializable;
import java.time.Duration;
import org.apache.flink.annotation.PublicEvolving;

/**
 * When the batching operator runs the model: at {@code maxBatchSize} records, when the oldest buffered
 * record has waited {@code maxBatchDelay}, when the buffer holds {@code maxBufferedBytes}, before every
 * checkpoint barrier and watermark, and at end of input. Immutable; built by {@link #builder()}.
 *
 * <pre>{@code
 * BatchPolicy policy = BatchPolicy.builder()
 *         .maxBatchSize(64)
 *         .maxBatchDelay(Duration.ofMillis(5))
 *         .build();
 * }</pre>
 */
@PublicEvolving
public final class BatchPolicy implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The default bound on buffered input bytes, padding included: 256 MiB. */
    public static final long DEFAULT_MAX_BUFFERED_BYTES = 256L << 20;

    private final int maxBatchSize;
    private final Duration maxBatchDelay;
    private final long maxBufferedBytes;
    private final double padValue;
    private final String attentionMaskInput;
    private final boolean rejectNaN;
    private final boolean padWithoutMask;
    private final boolean bucketByLength;
    private final boolean immutableRecords;

    private BatchPolicy(Builder b) {
        this.maxBatchSize = b.maxBatchSize;
        this.maxBatchDelay = b.maxBatchDelay;
        this.maxBufferedBytes = b.maxBufferedBytes;
        this.padValue = b.padValue;
        this.attentionMaskInput = b.attentionMaskInput;
        this.rejectNaN = b.rejectNaN;
        this.padWithoutMask = b.padWithoutMask;
        this.bucketByLength = b.bucketByLength;
        this.immutableRecords = b.immutableRecords;
    }

    /**
     * 64 records, 10 ms, 256 MiB of buffered input ({@link #DEFAULT_MAX_BUFFERED_BYTES}), pad 0, mask input
     * {@code attention_mask}, ragged records padded only where the mask covers the axis, NaN accepted.
     *
     * @return the default policy
     */
    public static BatchPolicy defaults() {
        return builder().build();
    }

    /**
     * Starts a policy from the defaults of {@link #defaults()} (example in the class comment).
     *
     * @return a new builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Records per ORT run at most (see {@link Builder#maxBatchSize}).
     *
     * @return the batch size, >= 1 (default 64)
     */
    public int maxBatchSize() {
        return maxBatchSize;
    }

    /**
     * The longest a record waits for its batch to fill (see {@link Builder#maxBatchDelay}).
     *
     * @return the delay, >= 0 (default 10 ms)
     */
    public Duration maxBatchDelay() {
        return maxBatchDelay;
    }

    /**
     * Bound on the buffered records' input bytes (see {@link Builder#maxBufferedBytes}).
     *
     * @return the bound in bytes, > 0 (default {@link #DEFAULT_MAX_BUFFERED_BYTES})
     */
    public long maxBufferedBytes() {
        return maxBufferedBytes;
    }

    /**
     * The value ragged inputs are padded with (numeric inputs; BOOL pads false, STRING pads "").
     *
     * @return the pad value, never NaN (default 0)
     */
    public double padValue() {
        return padValue;
    }

    /**
     * The input the operator fills with 1 for real positions and 0 for padding, when the encoder does not.
     *
     * @return the mask input's name (default {@code attention_mask})
     */
    public String attentionMaskInput() {
        return attentionMaskInput;
    }

    /**
     * Whether records with NaN in a FLOAT/DOUBLE input go to the failed-records output instead of being scored.
     *
     * @return true to reject NaN (default false)
     */
    public boolean rejectNaN() {
        return rejectNaN;
    }

    /**
     * Whether records that differ along an axis no mask input covers are padded into one run anyway.
     *
     * @return true to pad without a mask (default false)
     */
    public boolean padWithoutMask() {
        return padWithoutMask;
    }

    /**
     * Whether padded records run in length buckets (see {@link Builder#bucketByLength}).
     *
     * @return true to bucket by length (default true)
     */
    public boolean bucketByLength() {
        return bucketByLength;
    }

    /**
     * Whether records are declared never to change once handed to the operator (see {@link
     * Builder#immutableRecords}).
     *
     * @return true when buffered records are kept without a copy under object reuse (default false)
     */
    public boolean immutableRecords() {
        return immutableRecords;
    }

    @Override
    public String toString() {
        return "BatchPolicy{maxBatchSize=" + maxBatchSize + ", maxBatchDelay=" + maxBatchDelay
                + ", maxBufferedBytes=" + maxBufferedBytes + ", padValue=" + padValue + ", attentionMaskInput="
                + attentionMaskInput + ", padWithoutMask=" + padWithoutMask + ", bucketByLength=" + bucketByLength
                + ", rejectNaN=" + rejectNaN + ", immutableRecords=" + immutableRecords + "}";
    }

    /** Builder of {@link BatchPolicy}; each setter checks its argument at once. */
    public static final class Builder {
        private int maxBatchSize = 64;
        private Duration maxBatchDelay = Duration.ofMillis(10);
        private long maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES;
        private double padValue;
        private String attentionMaskInput = "attention_mask";
        private boolean rejectNaN;
        private boolean padWithoutMask;
        private boolean bucketByLength = true;
        private boolean immutableRecords;

        private Builder() {}

        /**
         * Records per ORT run, >= 1. Models whose batch dim is fixed (or absent) are run one record at a time.
         *
         * @param records the largest batch, at least 1 (default 64)
         * @return this builder
         * @throws IllegalArgumentException when {@code records} is below 1
         */
        public Builder maxBatchSize(int records) {
            checkArgument(records >= 1, "maxBatchSize must be >= 1 record, got %s", records);
            this.maxBatchSize = records;
            return this;
        }

        /**
         * The longest a record waits for its batch to fill, in processing time (millisecond resolution);
         * {@code Duration.ZERO} runs what is buffered at every record.
         *
         * @param delay the longest wait, zero or positive (default 10 ms)
         * @return this builder
         * @throws IllegalArgumentException when {@code delay} is negative
         * @throws NullPointerException when {@code delay} is null
         */
        public Builder maxBatchDelay(Duration delay) {
            checkNotNull(delay, "maxBatchDelay");
            checkArgument(!delay.isNegative(), "maxBatchDelay must be >= 0, got %s", delay);
            this.maxBatchDelay = delay;
            return this;
        }

        /**
         * Bound on the buffered records' input bytes as they will be packed (padding to the longest record
         * included), > 0; default 256 MiB. A record that would take the buffer past it first flushes what
         * is buffered; a record larger than the bound on its own is scored alone (the per-record bound is
         * {@link OnnxInferenceSpec.Builder#maxRecordBytes}).
         *
         * @param bytes the bound on buffered input bytes, at least 1 (default 256 MiB)
         * @return this builder
         * @throws IllegalArgumentException when {@code bytes} is 0 or negative
         */
        public Builder maxBufferedBytes(long bytes) {
            checkArgument(bytes > 0, "maxBufferedBytes must be > 0, got %s", bytes);
            this.maxBufferedBytes = bytes;
            return this;
        }

        /**
         * Pads records that differ along a free axis into one run even where no attention-mask input covers
         * that axis (default false: such records are grouped into runs of equal shape instead).
         *
         * <p>Only for models that ignore padding by construction. For any other model (an LSTM, mean
         * pooling, a convolution over time) a record's prediction then depends on the records that share
         * its batch, and no drift check can see it. STRING inputs are never padded without a mask: an empty
         * string is text to a string operator (a token, a length), so records that differ along a free dim of a
         * STRING input run in groups of equal shape whatever this says.
         *
         * @param pad true to pad records into one run without a mask (default false)
         * @return this builder
         */
        public Builder padWithoutMask(boolean pad) {
            this.padWithoutMask = pad;
            return this;
        }

        /**
         * Runs the padded records of a batch in length buckets (default true): records share a run only when
         * their padded lengths fall in the same range ({@code 1..8}, then steps of about 1.41x: {@code 9..11},
         * {@code 12..16}, {@code 17..23}, {@code 24..32}, ...), so a record longer than 8 is padded by less than
         * 41 % of its length instead of to the batch's longest. Results are the same either way (padding is masked); a batch
         * of mixed lengths takes a few runs instead of one, which pays off wherever compute grows with the
         * padded length: 1.5-1.7x the throughput on a BERT-like encoder with lengths uniform in 8..256 at batch 64
         * (README, benchmark).
         *
         * @param bucket true to run padded records in length buckets (default true), false for one run per shape
         *     group
         * @return this builder
         */
        public Builder bucketByLength(boolean bucket) {
            this.bucketByLength = bucket;
            return this;
        }

        /**
         * The value ragged numeric inputs are padded with (BOOL pads false, STRING pads "").
         *
         * @param value the pad value, any number but NaN (default 0)
         * @return this builder
         * @throws IllegalArgumentException when {@code value} is NaN
         */
        public Builder padValue(double value) {
            checkArgument(!Double.isNaN(value), "padValue must be a number, got NaN");
            this.padValue = value;
            return this;
        }

        /**
         * The input the operator fills with 1 for real positions and 0 for padding, when the encoder does not.
         *
         * @param inputName the model input's name, not blank (default {@code attention_mask})
         * @return this builder
         * @throws IllegalArgumentException when {@code inputName} is null or blank
         */
        public Builder attentionMaskInput(String inputName) {
            checkArgument(inputName != null && !inputName.isBlank(), "attentionMaskInput must name an input");
            this.attentionMaskInput = inputName;
            return this;
        }

        /**
         * Sends records with NaN in a FLOAT/DOUBLE input to the failed-records output instead of scoring them.
         *
         * @param reject true to reject such records (default false: they are scored)
         * @return this builder
         */
        public Builder rejectNaN(boolean reject) {
            this.rejectNaN = reject;
            return this;
        }

        /**
         * Declares that no record changes after it reaches the operator: whatever emits the records makes a
         * new object for each (as most sources and map functions do) and never writes to one it has emitted.
         * With object reuse on ({@code env.getConfig().enableObjectReuse()}) the operator then buffers the
         * record itself instead of a serializer copy of it; without object reuse nothing changes (Flink hands
         * over a copy anyway). The encoded inputs are always the operator's own copy, so only what reads the
         * record after its batch runs (the decoder, the dead letters) could see a change.
         *
         * <p>Only for such streams: if an upstream function refills one object per record (a reused
         * {@code Tuple2}, a scratch array), a declared-immutable record is overwritten while it waits for its
         * batch, and the decoder and the dead letters see the later record's fields. Saves one copy per record
         * (on the MLP benchmark, a third of the task thread's allocation).
         *
         * <pre>{@code
         * BatchPolicy policy = BatchPolicy.builder().immutableRecords(true).build();
         * }</pre>
         *
         * @param immutable true when no record is changed after it is emitted (default false: buffered records
         *     are copied under object reuse)
         * @return this builder
         */
        public Builder immutableRecords(boolean immutable) {
            this.immutableRecords = immutable;
            return this;
        }

        /**
         * Builds the policy; every setting was checked as it was set.
         *
         * @return the immutable policy
         */
        public BatchPolicy build() {
            return new BatchPolicy(this);
        }
    }
}
