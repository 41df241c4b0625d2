package io.flinkonnx.flink;

import static org.apache.flink.util.Preconditions.checkArgument;
import static org.apache.flink.util.Preconditions.checkNotNull;

import java.io.Serializable;
import java.time.Duration;

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
public final class BatchPolicy implements Serializable {
    private static final long serialVersionUID = 1L;

    private final int maxBatchSize;
    private final Duration maxBatchDelay;
    private final long maxBufferedBytes;
    private final double padValue;
    private final String attentionMaskInput;
    private final boolean rejectNaN;

    private BatchPolicy(Builder b) {
        this.maxBatchSize = b.maxBatchSize;
        this.maxBatchDelay = b.maxBatchDelay;
        this.maxBufferedBytes = b.maxBufferedBytes;
        this.padValue = b.padValue;
        this.attentionMaskInput = b.attentionMaskInput;
        this.rejectNaN = b.rejectNaN;
    }

    /** 64 records, 10 ms, no byte bound, pad 0, mask input {@code attention_mask}, NaN accepted. */
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

    @Override
    public String toString() {
        return "BatchPolicy{maxBatchSize=" + maxBatchSize + ", maxBatchDelay=" + maxBatchDelay
                + (maxBufferedBytes == Long.MAX_VALUE ? "" : ", maxBufferedBytes=" + maxBufferedBytes) + ", padValue="
                + padValue + ", attentionMaskInput=" + attentionMaskInput + ", rejectNaN=" + rejectNaN + "}";
    }

    /** Builder of {@link BatchPolicy}; each setter checks its argument at once. */
    public static final class Builder {
        private int maxBatchSize = 64;
        private Duration maxBatchDelay = Duration.ofMillis(10);
        private long maxBufferedBytes = Long.MAX_VALUE;
        private double padValue;
        private String attentionMaskInput = "attention_mask";
        private boolean rejectNaN;

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

        /** Bound on the buffered records' input bytes (estimated from their arrays), > 0. */
        public Builder maxBufferedBytes(long bytes) {
            checkArgument(bytes > 0, "maxBufferedBytes must be > 0, got %s", bytes);
            this.maxBufferedBytes = bytes;
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
