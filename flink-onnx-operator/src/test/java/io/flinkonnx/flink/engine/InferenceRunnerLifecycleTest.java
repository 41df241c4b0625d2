package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A runner's life: once closed, every scoring call fails with an {@link IllegalStateException} naming the call
 * and the model (as ORT's {@code OrtSession} does), never a NullPointerException or a run on a freed session;
 * closing again does nothing (the slot's shared session is released once, so a runner sharing it keeps
 * scoring); and the accessors metric reporters read after close stay safe. Real ORT sessions on a model made
 * here.
 */
class InferenceRunnerLifecycleTest {
    private static final TestModels.Mlp MLP = new TestModels.Mlp(4, 8, 2);

    @TempDir
    Path dir;

    private final List<InferenceRunner<?, ?>> runners = new ArrayList<>();

    @AfterEach
    void closeRunners() {
        runners.forEach(InferenceRunner::close);
    }

    private OnnxInferenceSpec<float[], float[]> spec() throws Exception {
        return OnnxInference.<float[]>builder(
                        MLP.writeTo(dir.resolve("mlp.onnx")).toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
    }

    private InferenceRunner<float[], float[]> open(OnnxInferenceSpec<float[], float[]> spec, String slot)
            throws Exception {
        InferenceRunner<float[], float[]> runner = new InferenceRunner<>(spec);
        runners.add(runner);
        runner.open(slot, 0, null, 4, BatchPolicy.defaults());
        return runner;
    }

    @Test
    void everyScoringCallAfterCloseFailsNamingTheCallAndTheModel() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec();
        InferenceRunner<float[], float[]> runner = open(spec, "lifecycle-closed");
        float[] x = TestModels.features(1, 4);
        assertThat(runner.infer(x)).containsExactly(MLP.reference(x), within(1e-5f));
        RecordInputs row = runner.row(0);

        runner.close();

        String model = spec.model().uri();
        assertClosed(() -> runner.infer(x), "infer", model);
        assertClosed(() -> runner.scoreBatch(new Object[] {x}, 1, new Discard<>()), "scoreBatch", model);
        assertClosed(() -> runner.encode(x, row, false), "encode", model);
        assertClosed(() -> runner.decode(x, 0), "decode", model);
        assertClosed(runner::outputs, "outputs", model);
        assertClosed(() -> runner.run(0, 1), "run", model);
        assertClosed(() -> runner.row(0), "row", model);
        assertClosed(() -> runner.swapRows(0, 1), "swapRows", model);
        assertClosed(() -> runner.version("v2"), "version", model);
        assertClosed(() -> runner.open("lifecycle-closed", 0, null), "open", model);
    }

    @Test
    void closeIsIdempotentAndReleasesTheSharedSessionOnce() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec();
        int before = SessionRegistry.INSTANCE.openSessions();
        InferenceRunner<float[], float[]> first = open(spec, "lifecycle-shared");
        InferenceRunner<float[], float[]> second = open(spec, "lifecycle-shared");
        assertThat(second.session()).isSameAs(first.session());
        assertThat(SessionRegistry.INSTANCE.openSessions()).isEqualTo(before + 1);

        first.close();
        first.close();
        first.close();

        // a second release would have freed the session under the runner still using it
        assertThat(SessionRegistry.INSTANCE.openSessions()).isEqualTo(before + 1);
        float[] x = TestModels.features(2, 4);
        assertThat(second.infer(x)).containsExactly(MLP.reference(x), within(1e-5f));

        second.close();
        assertThat(SessionRegistry.INSTANCE.openSessions()).isEqualTo(before);
        second.close();
        assertThat(SessionRegistry.INSTANCE.openSessions()).isEqualTo(before);
    }

    @Test
    void whatReportersAndCancellersReadAfterCloseStaysSafe() throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = spec();
        InferenceRunner<float[], float[]> runner = open(spec, "lifecycle-readers");
        runner.close();

        assertThat(runner.session()).isNull();
        assertThat(runner.fallbackReport()).isNotNull();
        assertThat(runner.modelName()).isEqualTo(spec.model().uri());
        assertThat(runner.version()).isEqualTo("mlp");
        assertThatCode(runner::terminate).doesNotThrowAnyException();
        assertThat(runner.maskCacheSize()).isZero();
    }

    private static void assertClosed(ThrowingCallable call, String method, String model) {
        assertThatThrownBy(call)
                .as(method)
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("Trying to score a closed InferenceRunner of model " + model)
                .hasMessageContaining(method + " after close()");
    }

    /** Outcomes nobody reads: the call must fail before any. */
    private static final class Discard<OUT> implements InferenceRunner.Outcomes<OUT> {
        @Override
        public void scored(int index, OUT result) {}

        @Override
        public void failed(int index, Exception reason) {}
    }
}
