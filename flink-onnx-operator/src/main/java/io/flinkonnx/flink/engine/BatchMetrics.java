package io.flinkonnx.flink.engine;

import org.apache.flink.annotation.Internal;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;

/**
 * The batch metrics of one record buffer, under the names Apache Beam's RunInference uses, so that a
 * dashboard built for one reads the other: {@code num_inferences}, {@code num_batches},
 * {@code failed_batches_counter}, {@code inference_request_batch_size}, {@code inference_batch_latency_micro_secs}
 * and {@code queue_time_micro_secs}. Every operator registers the same set (the many-model operator one per
 * model label). Updated on the task thread only.
 */
@Internal
public final class BatchMetrics {
    /** The samples each histogram keeps (8 bytes each): its percentiles are over the latest batches. */
    public static final int HISTOGRAM_WINDOW = 1024;

    final Counter inferences;
    final Counter batches;
    final Counter failedBatches;
    final Histogram batchSizes;
    final Histogram batchLatencyMicros;
    final Histogram queueTimeMicros;

    /** Registers the set in {@code group}, each histogram over the latest {@link #HISTOGRAM_WINDOW} batches. */
    public BatchMetrics(MetricGroup group) {
        this(group, HISTOGRAM_WINDOW);
    }

    /**
     * Registers the set in {@code group}, each histogram over the latest {@code histogramWindow} batches (fewer
     * for a set per model: a thousand models keep three thousand histograms).
     */
    public BatchMetrics(MetricGroup group, int histogramWindow) {
        inferences = group.counter("num_inferences");
        batches = group.counter("num_batches");
        failedBatches = group.counter("failed_batches_counter");
        batchSizes =
                group.histogram("inference_request_batch_size", new DescriptiveStatisticsHistogram(histogramWindow));
        batchLatencyMicros = group.histogram(
                "inference_batch_latency_micro_secs", new DescriptiveStatisticsHistogram(histogramWindow));
        queueTimeMicros = group.histogram("queue_time_micro_secs", new DescriptiveStatisticsHistogram(histogramWindow));
    }

    /** Records scored (not counting dead letters). */
    public long inferences() {
        return inferences.getCount();
    }

    /** Batches scored. */
    public long batches() {
        return batches.getCount();
    }

    /** Batches in which a run failed (isolation was needed), however many runs the isolation took. */
    public long failedBatches() {
        return failedBatches.getCount();
    }

    /** Records per batch. */
    public Histogram batchSizes() {
        return batchSizes;
    }

    /** From a batch's drain to its last record emitted, in microseconds. */
    public Histogram batchLatencyMicros() {
        return batchLatencyMicros;
    }

    /** How long each batch's oldest record waited in the buffer, in microseconds. */
    public Histogram queueTimeMicros() {
        return queueTimeMicros;
    }
}
