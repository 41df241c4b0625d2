package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.sql.OnnxScoreFunction;
import io.flinkonnx.flink.sql.OnnxScoreOrNullFunction;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.streaming.util.MockStreamingRuntimeContext;
import org.apache.flink.table.functions.FunctionContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One scalar function instance called with several model URIs (as Flink's generated code does for two
 * calls of one function in a query): a session per model, up to a bound, all closed with the function.
 */
class OnnxScoreFunctionModelsTest {
    private static final Float[] X = {0.5f, -1f, 2f, 0.25f};

    @TempDir
    Path dir;

    private static void assertScoredBy(Object result, TestModels.Mlp mlp) {
        float[] x = {0.5f, -1f, 2f, 0.25f};
        float[] expected = mlp.reference(x);
        Float[] y = (Float[]) result;
        assertThat(y).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            assertThat(y[i]).isCloseTo(expected[i], within(1e-5f));
        }
    }

    @Test
    void oneInstanceScoresEachCallWithItsOwnModelUpToTheBoundAndClosesEverySession() throws Exception {
        List<TestModels.Mlp> mlps = new ArrayList<>();
        List<String> uris = new ArrayList<>();
        for (int v = 0; v <= OnnxScoreFunction.MAX_MODELS_PER_INSTANCE; v++) {
            TestModels.Mlp mlp = new TestModels.Mlp(4, 8, 3, v);
            mlps.add(mlp);
            uris.add(mlp.writeTo(dir.resolve("m" + v + ".onnx")).toString());
        }
        int openBefore = SessionStats.open();
        OnnxScoreFunction function = new OnnxScoreFunction();
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            // interleaved, as two calls of one query reach the shared instance
            for (int round = 0; round < 2; round++) {
                for (int v = 0; v < OnnxScoreFunction.MAX_MODELS_PER_INSTANCE; v++) {
                    assertScoredBy(function.eval(uris.get(v), X), mlps.get(v));
                }
            }
            assertThat(SessionStats.open() - openBefore).isEqualTo(OnnxScoreFunction.MAX_MODELS_PER_INSTANCE);
            String oneTooMany = uris.get(OnnxScoreFunction.MAX_MODELS_PER_INSTANCE);
            assertThatThrownBy(() -> function.eval(oneTooMany, X))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("at most " + OnnxScoreFunction.MAX_MODELS_PER_INSTANCE + " different models")
                    .hasMessageContaining(oneTooMany);
            assertThat(SessionStats.open() - openBefore).isEqualTo(OnnxScoreFunction.MAX_MODELS_PER_INSTANCE);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    @Test
    void theOrNullFunctionFailsTheJobOnASessionThatBreaksAfterScoring() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(4, 8, 3);
        String uri = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
        int openBefore = SessionStats.open();
        OnnxScoreOrNullFunction function = new OnnxScoreOrNullFunction();
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            assertScoredBy(function.eval(uri, X), mlp);
            assertThat(function.eval(uri, new Float[] {1f, null, 2f, 3f}))
                    .as("a bad row is NULL")
                    .isNull();
            // ORT's terminate flag: every run fails from now on, as on a lost device; the probe (the row that
            // scored) fails too, so the session is broken, not the rows
            function.runner(uri).terminate();
            List<Object> beforeTheVerdict = new ArrayList<>();
            for (int i = 1; i < OnnxInferenceSpec.DEFAULT_MAX_CONSECUTIVE_FAILED_BATCHES; i++) {
                beforeTheVerdict.add(function.eval(uri, X));
            }
            assertThat(beforeTheVerdict).containsOnlyNulls();
            assertThatThrownBy(() -> function.eval(uri, X))
                    .isInstanceOf(SystemicFailureException.class)
                    .hasMessageContaining("a record that scored earlier on this session")
                    .hasCauseInstanceOf(OrtException.class);
            assertThatThrownBy(() -> function.eval(uri, X)).isInstanceOf(SystemicFailureException.class);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }
}
