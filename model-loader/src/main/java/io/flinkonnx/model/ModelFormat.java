package io.flinkonnx.model;

import org.apache.flink.annotation.PublicEvolving;

/** The two serialized forms ONNX Runtime loads. */
@PublicEvolving
public enum ModelFormat {
    /** An ONNX protobuf ({@code ModelProto}), usually {@code .onnx}. */
    ONNX,
    /** ONNX Runtime's pre-optimized flatbuffer format, {@code .ort} (file identifier {@code ORTM}). */
    ORT;

    /**
     * Recognizes ORT format by its flatbuffer file identifier (bytes 4..7 are {@code ORTM}); everything
     * else is treated as ONNX and checked as such.
     */
    public static ModelFormat detect(byte[] head) {
        if (head.length >= 8 && head[4] == 'O' && head[5] == 'R' && head[6] == 'T' && head[7] == 'M') {
            return ORT;
        }
        return ONNX;
    }
}
