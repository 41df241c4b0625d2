package io.flinkonnx.flink.sql;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.apache.flink.streaming.util.MockStreamingRuntimeContext;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * ML_PREDICT's synchronous runtime on a session that breaks after it scored (ORT's terminate flag makes
 * every run fail, as a lost device or a corrupted session would): whatever {@code 'on-error'} says, the
 * job fails with a {@link SystemicFailureException} once the engine's probe (the row that scored) fails
 * too, instead of dropping or NULLing every row from then on.
 */
class SyncPredictSystemicFailureTest {
    private static final TestModels.Mlp MLP = new TestModels.Mlp(4, 8, 2);
    private static final int MAX_FAILED_BATCHES = 3;

    @TempDir
    Path dir;

    private static RowData features(int seed) {
        float[] x = TestModels.features(seed, 4);
        Float[] boxed = new Float[x.length];
        for (int i = 0; i < x.length; i++) {
            boxed[i] = x[i];
        }
        return GenericRowData.of(new GenericArrayData(boxed));
    }

    @ParameterizedTest
    @EnumSource(
            value = OnError.class,
            names = {"SKIP", "NULL", "FAIL"})
    void aSessionThatBreaksAfterScoringFailsTheJobInEveryOnErrorMode(OnError onError) throws Exception {
        Path model = MLP.writeTo(dir.resolve("mlp.onnx"));
        ModelSignature signature;
        try (LocalModel local = ModelSource.of(model.toString()).fetch()) {
            signature = local.signature().orElseThrow();
        }
        SqlBinding binding = SqlBinding.bind(
                "m",
                signature,
                List.of(Column.physical("x", DataTypes.ARRAY(DataTypes.FLOAT()))),
                List.of(
                        Column.physical("y", DataTypes.ARRAY(DataTypes.FLOAT())),
                        Column.physical("err", DataTypes.STRING())),
                "err",
                null);
        OnnxInferenceSpec<Object[], RowData> spec = OnnxInference.<Object[]>builder(model.toString())
                .encoder(new OnnxModelProviderFactory.SqlEncoder(binding))
                .decoder(new OnnxModelProviderFactory.SqlDecoder(binding), null)
                .maxConsecutiveFailedBatches(MAX_FAILED_BATCHES)
                .buildUnchecked();
        int openBefore = SessionStats.open();
        OnnxPredictFunction function = new OnnxPredictFunction(spec, binding, onError, null, null);
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            RowData scored = function.predict(features(0)).iterator().next();
            float[] expected = MLP.reference(TestModels.features(0, 4));
            assertThat(scored.getArray(0).toFloatArray()[0]).isCloseTo(expected[0], within(1e-5f));
            assertThat(scored.isNullAt(1)).isTrue();

            function.runner().terminate(); // every run fails from now on, the probe's too
            List<Collection<RowData>> beforeTheVerdict = new ArrayList<>();
            if (onError != OnError.FAIL) {
                for (int i = 1; i < MAX_FAILED_BATCHES; i++) {
                    beforeTheVerdict.add(function.predict(features(i)));
                }
            }
            assertThatThrownBy(() -> {
                        for (int i = 0; i < MAX_FAILED_BATCHES; i++) {
                            function.predict(features(100 + i));
                        }
                    })
                    .isInstanceOf(onError == OnError.FAIL ? RuntimeException.class : SystemicFailureException.class)
                    .hasRootCauseInstanceOf(OrtException.class);
            if (onError == OnError.SKIP) {
                assertThat(beforeTheVerdict).allSatisfy(rows -> assertThat(rows).isEmpty());
            } else if (onError == OnError.NULL) {
                assertThat(beforeTheVerdict)
                        .allSatisfy(rows -> assertThat(rows).singleElement().satisfies(r -> assertThat(r.isNullAt(0))
                                .isTrue()));
            }
            // the verdict stands: every later row fails the job too, none is dropped or NULLed
            assertThatThrownBy(() -> {
                        for (int i = 0; i < MAX_FAILED_BATCHES; i++) {
                            function.predict(features(200 + i));
                        }
                    })
                    .isInstanceOf(onError == OnError.FAIL ? RuntimeException.class : SystemicFailureException.class);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }
}
