package io.flinkonnx.flink;

import org.apache.flink.annotation.PublicEvolving;

/**
 * Which operators share one ONNX Runtime session of a model.
 *
 * <pre>{@code
 * OnnxInference.<Image>builder("s3://models/resnet50.onnx").sessionSharing(SessionSharing.PER_TASK_MANAGER)
 * }</pre>
 */
@PublicEvolving
public enum SessionSharing {
    /**
     * One session per task slot (the default): slots never contend for a session's intra-op threads, and a
     * slot's memory is its own, as Flink's slot model expects.
     */
    PER_SLOT,
    /**
     * One session per TaskManager process, shared by every slot (ORT's {@code run} is thread-safe): the
     * weights are in memory once however many slots score the model, for large models on TaskManagers with
     * several slots. Slots then share the session's intra-op thread pool settings but run concurrently.
     */
    PER_TASK_MANAGER
}
