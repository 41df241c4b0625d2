package io.flinkonnx.flink.session;

import ai.onnxruntime.OrtEnvironment;
import io.flinkonnx.model.RuntimeLimits;
import java.util.Map;
import org.apache.flink.annotation.Internal;

/** The ONNX Runtime in this process: its environment, version, and what models it can read. */
@Internal
public final class OrtRuntime {
    private OrtRuntime() {}

    /** ORT's process-wide environment; never closed (ORT's shutdown hook owns it). */
    public static OrtEnvironment env() {
        return OrtEnvironment.getEnvironment();
    }

    public static String version() {
        return env().getVersion();
    }

    /**
     * The IR/opset limits of this ORT version, measured for 1.23 and 1.24 (guarded by
     * {@code ModelLoadingTest}, which loads a model at each limit and one past it in the real ORT); null
     * for versions not measured, whose own load error is then reported.
     */
    public static RuntimeLimits limits() {
        return limitsOf(version());
    }

    public static RuntimeLimits limitsOf(String version) {
        String[] parts = version.split("\\.");
        if (parts.length < 2) {
            return null;
        }
        String name = "ONNX Runtime " + version;
        switch (parts[0] + "." + parts[1]) {
            case "1.24":
                return new RuntimeLimits(name, 13, Map.of("", 25L, "ai.onnx.ml", 5L));
            case "1.23":
                return new RuntimeLimits(name, 11, Map.of("", 23L, "ai.onnx.ml", 5L));
            default:
                return null;
        }
    }
}
