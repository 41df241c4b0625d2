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

    private BatchPolicy(Builder b) {
        this.maxBatchSize = b.maxBatchSize;
        this.maxBatchDelay = b.maxBatchDelay;
        this.maxBufferedBytes = b.maxBufferedBytes;
        this.padValue = b.padValue;
        this.attentionMaskInput = b.attentionMaskInput;
        this.rejectNaN = b.rejectNaN;
        this.padWithoutMask = b.padWithoutMask;
        this.bucketByLength = b.bucketByLength;
    }

    /**
     * 64 records, 10 ms, 256 MiB of buffered input ({@link #DEFAULT_MAX_BUFFERED_BYTES}), pad 0, mask input
     * {@code attention_mask}, ragged records padded only where the mask covers the axis, NaN accepted.
     */
    public static BatchPolicy defaults() {
        return builder().build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public int maxBatchSize() {
        return maxBatchSize;
    }

    public Duration maxBatchDelay() {
        return maxBatchDelay;
    }

    public long maxBufferedBytes() {
        return maxBufferedBytes;
    }

    /** The value ragged inputs are padded with (numeric inputs; BOOL pads false, STRING pads ""). */
    public double padValue() {
        return padValue;
    }

    /** The input the operator fills with 1 for real positions and 0 for padding, when the encoder does not. */
    public String attentionMaskInput() {
        return attentionMaskInput;
    }

    public boolean rejectNaN() {
        return rejectNaN;
    }

    /** Whether records that differ along an axis no mask input covers are padded into one run anyway. */
    public boolean padWithoutMask() {
        return padWithoutMask;
    }

    /** Whether padded records run in length buckets (see {@link Builder#bucketByLength}). */
    public boolean bucketByLength() {
        return bucketByLength;
    }

    @Override
    public String toString() {
        return "BatchPolicy{maxBatchSize=" + maxBatchSize + ", maxBatchDelay=" + maxBatchDelay
                + ", maxBufferedBytes=" + maxBufferedBytes + ", padValue=" + padValue + ", attentionMaskInput="
                + attentionMaskInput + ", padWithoutMask=" + padWithoutMask + ", bucketByLength=" + bucketByLength
                + ", rejectNaN=" + rejectNaN + "}";
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

        private Builder() {}

        /** Records per ORT run, >= 1. Models whose batch dim is fixed (or absent) are run one record at a time. */
        public Builder maxBatchSize(int records) {
            checkArgument(records >= 1, "maxBatchSize must be >= 1 record, got %s", records);
            this.maxBatchSize = records;
            return this;
        }

        /**
         * The longest a record waits for its batch to fill, in processing time (millisecond resolution);
         * {@code Duration.ZERO} runs what is buffered at every record.
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
         * its batch, and no drift check can see it.
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
         */
        public Builder bucketByLength(boolean bucket) {
            this.bucketByLength = bucket;
            return this;
        }

        public Builder padValue(double value) {
            checkArgument(!Double.isNaN(value), "padValue must be a number, got NaN");
            this.padValue = value;
            return this;
        }

        public Builder attentionMaskInput(String inputName) {
            checkArgument(inputName != null && !inputName.isBlank(), "attentionMaskInput must name an input");
            this.attentionMaskInput = inputName;
            return this;
        }

        /** Sends records with NaN in a FLOAT/DOUBLE input to the failed-records output instead of scoring them. */
        public Builder rejectNaN(boolean reject) {
            this.rejectNaN = reject;
            return this;
        }

        public BatchPolicy build() {
            return new BatchPolicy(this);
        }
    }
}
