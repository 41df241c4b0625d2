package io.flinkonnx.flink.sql;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.flink.streaming.util.MockStreamingRuntimeContext;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ML_PREDICT's runtimes serving a watched folder ({@code 'watch.interval'}): a newer version swaps in
 * between rows (sync) or batches (async), rows name the version that scored them, and a version that does
 * not load is refused while the current one serves on.
 */
class WatchedModelPredictTest {
    private static final TestModels.Mlp V1 = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp V2 = new TestModels.Mlp(4, 8, 2, 2);
    private static final float[] X = TestModels.features(5, 4);

    @TempDir
    Path dir;

    private Path publish(TestModels.Mlp mlp, String version) throws Exception {
        return mlp.writeTo(
                Files.createDirectories(dir.resolve("models").resolve(version)).resolve("model.onnx"));
    }

    private SqlBinding binding(Path model) throws Exception {
        ModelSignature signature;
        try (LocalModel local = ModelSource.of(model.toString()).fetch()) {
            signature = local.signature().orElseThrow();
        }
        return SqlBinding.bind(
                "m",
                signature,
                List.of(Column.physical("x", DataTypes.ARRAY(DataTypes.FLOAT()))),
                List.of(
                        Column.physical("y", DataTypes.ARRAY(DataTypes.FLOAT())),
                        Column.physical("version", DataTypes.STRING())),
                null,
                "version");
    }

    private static OnnxInferenceSpec<Object[], RowData> spec(Path model, SqlBinding binding) {
        return OnnxInference.<Object[]>builder(model.toString())
                .encoder(new OnnxModelProviderFactory.SqlEncoder(binding))
                .decoder(new OnnxModelProviderFactory.SqlDecoder(binding), null)
                .buildUnchecked();
    }

    private ModelUpdates watching() {
        // short: the tests wait for the timer's polls (awaitPolledAndLoaded), never for a duration
        return ModelUpdates.watch(dir.resolve("models").toString(), Duration.ofMillis(20));
    }

    private static RowData features() {
        Float[] boxed = new Float[X.length];
        for (int i = 0; i < X.length; i++) {
            boxed[i] = X[i];
        }
        return GenericRowData.of(new GenericArrayData(boxed));
    }

    private static void assertScoredBy(RowData row, String version, TestModels.Mlp mlp) {
        assertThat(row.getString(1).toString()).isEqualTo(version);
        float[] expected = mlp.reference(X);
        float[] y = row.getArray(0).toFloatArray();
        assertThat(y).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            assertThat(y[i]).as(Arrays.toString(y)).isCloseTo(expected[i], within(1e-5f));
        }
    }

    @Test
    void theSyncRuntimeSwapsToTheNewestVersionBetweenRowsAndEachRowNamesItsVersion() throws Exception {
        Path v1 = publish(V1, "v1");
        publish(V2, "v2");
        SqlBinding binding = binding(v1);
        int openBefore = SessionStats.open();
        OnnxPredictFunction function =
                new OnnxPredictFunction(spec(v1, binding), binding, OnError.FAIL, null, watching());
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            // v1 (planned) serves until a row comes after v2 loaded
            assertThat(function.watched().version()).isEqualTo("v1");
            assertThat(function.watched().awaitPolledAndLoaded(Duration.ofSeconds(60)))
                    .isTrue();
            assertThat(function.watched().version()).isEqualTo("v1");
            assertScoredBy(function.predict(features()).iterator().next(), "v2", V2);
            assertScoredBy(function.predict(features()).iterator().next(), "v2", V2);
            assertThat(SessionStats.open() - openBefore)
                    .as("v1's session closed")
                    .isEqualTo(1);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    @Test
    void aVersionThatDoesNotLoadIsRefusedAndTheCurrentOneServesOn() throws Exception {
        Path v1 = publish(V1, "v1");
        Path v2 = publish(V2, "v2");
        byte[] bytes = Files.readAllBytes(v2);
        Files.write(v2, Arrays.copyOf(bytes, 100));
        SqlBinding binding = binding(v1);
        OnnxPredictFunction function =
                new OnnxPredictFunction(spec(v1, binding), binding, OnError.FAIL, null, watching());
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            assertScoredBy(function.predict(features()).iterator().next(), "v1", V1);
            assertThat(function.watched().awaitPolledAndLoaded(Duration.ofSeconds(60)))
                    .isTrue();
            assertScoredBy(function.predict(features()).iterator().next(), "v1", V1);
        } finally {
            function.close();
        }
    }

    @Test
    void theAsyncRuntimeSwapsBetweenBatches() throws Exception {
        Path v1 = publish(V1, "v1");
        publish(V2, "v2");
        SqlBinding binding = binding(v1);
        int openBefore = SessionStats.open();
        OnnxAsyncPredictFunction function =
                new OnnxAsyncPredictFunction(spec(v1, binding), binding, 4, 0, OnError.FAIL, null, watching());
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            RowData first = function.asyncPredict(features())
                    .get(60, TimeUnit.SECONDS)
                    .iterator()
                    .next();
            assertThat(function.watched().awaitPolledAndLoaded(Duration.ofSeconds(60)))
                    .isTrue();
            RowData second = function.asyncPredict(features())
                    .get(60, TimeUnit.SECONDS)
                    .iterator()
                    .next();
            // the first batch may already find v2 loaded (the folder is polled from open): each names its scorer
            String firstVersion = first.getString(1).toString();
            assertScoredBy(first, firstVersion, firstVersion.equals("v1") ? V1 : V2);
            assertScoredBy(second, "v2", V2);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    @Test
    void theFoldersLabelOfTheServedVersionDoesNotChangeAtTheFirstPoll() throws Exception {
        // fraud-2/fraud.onnx: the file's own label is "fraud"; the folder (and so every poll) names it "fraud-2"
        V1.writeTo(Files.createDirectories(dir.resolve("models").resolve("fraud-1"))
                .resolve("fraud.onnx"));
        Path v2 = V2.writeTo(Files.createDirectories(dir.resolve("models").resolve("fraud-2"))
                .resolve("fraud.onnx"));
        SqlBinding binding = binding(v2);
        // the planner opens the folder's newest version under the folder's label, as OnnxModelProviderFactory does
        OnnxPredictFunction function =
                new OnnxPredictFunction(spec(v2, binding), binding, OnError.FAIL, "fraud-2", watching());
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            assertThat(function.watched().version()).isEqualTo("fraud-2");
            assertScoredBy(function.predict(features()).iterator().next(), "fraud-2", V2);
            // the first poll finds the same bytes (already serving) and names them as the folder does
            assertThat(function.watched().awaitPolledAndLoaded(Duration.ofSeconds(60)))
                    .isTrue();
            assertScoredBy(function.predict(features()).iterator().next(), "fraud-2", V2);
            assertThat(function.watched().version()).isEqualTo("fraud-2");
        } finally {
            function.close();
        }
    }

    @Test
    void aVersionPublishedWhileNoRowsArriveLoadsOffTheTaskThreadAndServesTheNextRow() throws Exception {
        Path v1 = publish(V1, "v1");
        SqlBinding binding = binding(v1);
        int openBefore = SessionStats.open();
        OnnxPredictFunction function =
                new OnnxPredictFunction(spec(v1, binding), binding, OnError.FAIL, "v1", watching());
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            assertScoredBy(function.predict(features()).iterator().next(), "v1", V1);
            publish(V2, "v2");
            // no row arrives: the folder's timer finds v2 and its session loads all the same
            assertThat(function.watched().awaitPolledAndLoaded(Duration.ofSeconds(10)))
                    .as("polled and loaded without rows")
                    .isTrue();
            assertThat(SessionStats.open() - openBefore)
                    .as("v2 loaded beside v1 before any row")
                    .isEqualTo(2);
            // the next row swaps to it with nothing left to load, and v1's session closes
            assertScoredBy(function.predict(features()).iterator().next(), "v2", V2);
            assertThat(SessionStats.open() - openBefore).isEqualTo(1);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    @Test
    void theAsyncRuntimeServesAVersionPublishedWhileIdleFromItsNextBatch() throws Exception {
        Path v1 = publish(V1, "v1");
        SqlBinding binding = binding(v1);
        int openBefore = SessionStats.open();
        OnnxAsyncPredictFunction function =
                new OnnxAsyncPredictFunction(spec(v1, binding), binding, 4, 0, OnError.FAIL, "v1", watching());
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        try {
            publish(V2, "v2");
            assertThat(function.watched().awaitPolledAndLoaded(Duration.ofSeconds(10)))
                    .isTrue();
            assertThat(SessionStats.open() - openBefore).isEqualTo(2);
            RowData row = function.asyncPredict(features())
                    .get(60, TimeUnit.SECONDS)
                    .iterator()
                    .next();
            assertScoredBy(row, "v2", V2);
        } finally {
            function.close();
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }
}
