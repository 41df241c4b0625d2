package io.flinkonnx.flink;

import io.flinkonnx.flink.engine.InferenceRunner;

/** Opens runners outside Flink for tests of conversion and loading (real ORT sessions). */
public final class Runners {
    private Runners() {}

    public static <IN, OUT> InferenceRunner<IN, OUT> open(OnnxInferenceSpec<IN, OUT> spec) throws Exception {
        return open(spec, "test-slot");
    }

    public static <IN, OUT> InferenceRunner<IN, OUT> open(OnnxInferenceSpec<IN, OUT> spec, String slot)
            throws Exception {
        InferenceRunner<IN, OUT> runner = new InferenceRunner<>(spec);
        runner.open(slot, 0, null);
        return runner;
    }
}
