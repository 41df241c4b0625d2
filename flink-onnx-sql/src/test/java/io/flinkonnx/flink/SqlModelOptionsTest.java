package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** The model's options (ours and Flink's ML_PREDICT runtime options) and the catalog statements on a model. */
class SqlModelOptionsTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final int ROWS = 40;

    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private String model;
    private TableEnvironment t;

    @BeforeEach
    void setUp() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 3);
        model = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
        t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        List<Row> rows = new ArrayList<>();
        for (int id = 0; id < ROWS; id++) {
            float[] f = TestModels.features(id, 4);
            rows.add(Row.of(id, new Float[] {f[0], f[1], f[2], f[3]}));
        }
        t.createTemporaryView(
                "txns",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.INT()),
                                DataTypes.FIELD("features", DataTypes.ARRAY(DataTypes.FLOAT()))),
                        rows));
    }

    private void createModel(String extraOptions, String extraOutput) {
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>" + extraOutput + ")"
                + " WITH ('provider' = 'onnx', 'path' = '" + model + "'" + extraOptions + ")");
    }

    private List<Row> predict(String select, String map) throws Exception {
        return FlinkClusters.drain(t.executeSql("SELECT " + select + " FROM ML_PREDICT(TABLE txns, MODEL mlp,"
                        + " DESCRIPTOR(features)" + map + ")")
                .collect());
    }

    private void assertAllScored(List<Row> rows) {
        assertThat(rows).hasSize(ROWS);
        for (Row r : rows) {
            int id = (Integer) r.getField(0);
            Float[] y = (Float[]) r.getField(1);
            float[] expected = mlp.reference(TestModels.features(id, 4));
            for (int i = 0; i < expected.length; i++) {
                assertThat(y[i]).as("row %s output %s", id, i).isCloseTo(expected[i], within(1e-5f));
            }
        }
    }

    @Test
    void aMisspeltOptionIsNamedWithTheListOfValidOptions() {
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' ="
                + " 'onnx', 'pathh' = '" + model + "')");
        assertThatThrownBy(() -> predict("id, y", ""))
                .hasStackTraceContaining("Unsupported options")
                .hasStackTraceContaining("pathh")
                .hasStackTraceContaining("batch.max-size")
                .hasStackTraceContaining("on-error");
    }

    @Test
    void durationsTakeAUnitAndTheKeysInMillisecondsOfEarlierReleasesStillWork() throws Exception {
        createModel(", 'batch.max-size' = '8', 'batch.max-delay' = '2 ms', 'drift.interval' = '1 min'", "");
        assertAllScored(predict("id, y", ""));
        t.executeSql("DROP MODEL mlp");
        createModel(", 'batch.max-size' = '8', 'batch.max-delay-ms' = '2', 'drift.interval-ms' = '60000'", "");
        assertAllScored(predict("id, y", ""));
    }

    @Test
    void aBatchDelayThatIsNoDurationIsRefusedAtPlanningNamingTheOption() {
        createModel(", 'batch.max-delay' = '-5 ms'", "");
        assertThatThrownBy(() -> predict("id, y", ""))
                .hasStackTraceContaining("Invalid value for option 'batch.max-delay'")
                .hasStackTraceContaining("-5 ms");
    }

    @Test
    void aMissingPathSaysWhatItIsAndListsTheOptions() {
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' ="
                + " 'onnx')");
        assertThatThrownBy(() -> predict("id, y", ""))
                .hasStackTraceContaining("needs 'path' (a model URI")
                .hasStackTraceContaining("error-column");
    }

    @Test
    void theModelVersionNamesEveryPredictionInItsColumn() throws Exception {
        createModel(
                ", 'model-version' = 'fraud-7', 'model-version-column' = 'model_version'", ", model_version STRING");
        List<Row> rows = predict("id, y, model_version", "");
        assertAllScored(rows);
        assertThat(rows).extracting(r -> r.getField(2)).containsOnly("fraud-7");
    }

    @Test
    void withoutAVersionLabelTheVersionColumnHoldsTheModelsSha256() throws Exception {
        createModel(", 'model-version-column' = 'model_version'", ", model_version STRING");
        List<Row> rows = predict("id, y, model_version", "");
        String sha256;
        try (io.flinkonnx.model.LocalModel local =
                io.flinkonnx.model.ModelSource.of(model).fetch()) {
            sha256 = local.sha256();
        }
        assertThat(rows).extracting(r -> r.getField(2)).containsOnly(sha256);
    }

    @Test
    void flinksRuntimeOptionsWorkWithTheOnnxProvider() throws Exception {
        createModel(", 'batch.max-size' = '16'", "");
        assertAllScored(predict("id, y", ", MAP['async', 'false']"));
        assertAllScored(predict("id, y", ", MAP['async', 'true', 'output-mode', 'ALLOW_UNORDERED']"));
        assertAllScored(predict("id, y", ", MAP['async', 'true', 'max-concurrent-operations', '1']"));
    }

    @Test
    void aShortTimeoutShortensTheWaitForABatchInsteadOfTimingRowsOut() throws Exception {
        // The provider would wait up to 60 s to fill a batch of 64 that 40 rows never fill; a 2 s timeout makes
        // it wait at most 0.5 s. Ignoring the timeout would time every row out.
        createModel(", 'batch.max-size' = '64', 'batch.max-delay' = '1 min'", "");
        assertAllScored(predict("id, y", ", MAP['async', 'true', 'timeout', '2 s']"));
    }

    @Test
    @Timeout(60)
    void withoutAMapTheAsyncRuntimeGathersNoMoreRowsThanFlinkKeepsInFlight() throws Exception {
        // Flink's default is 10 rows in flight; waiting for a batch of 64 would cost the 60 s delay every time.
        createModel(", 'batch.max-size' = '64', 'batch.max-delay' = '1 min'", "");
        assertAllScored(predict("id, y", ""));
    }

    @Test
    void showCreateModelAndDescribeModelShowTheSchemaThePlannerCheckedAgainstTheOnnxSignature() throws Exception {
        createModel(", 'model-version' = 'fraud-7'", "");
        List<Row> ddl =
                FlinkClusters.drain(t.executeSql("SHOW CREATE MODEL mlp").collect());
        assertThat(ddl.get(0).getField(0).toString())
                .contains("INPUT (`features` ARRAY<FLOAT>)")
                .contains("OUTPUT (`y` ARRAY<FLOAT>)")
                .contains("'provider' = 'onnx'")
                .contains("'model-version' = 'fraud-7'");
        List<Row> described =
                FlinkClusters.drain(t.executeSql("DESCRIBE MODEL mlp").collect());
        assertThat(described).extracting(r -> r.getField(0)).containsExactly("features", "y");
    }

    @Test
    void mlEvaluateCannotBePlannedByFlink230ForAnyProvider() throws Exception {
        // Flink 2.3.0 validates ML_EVALUATE but has no physical rule for it (CannotPlanException in streaming and
        // batch, whatever the provider); when a Flink release plans it, this test fails and the README changes.
        String regressor = new TestModels.Mlp(4, 8, 1)
                .writeTo(dir.resolve("regressor.onnx"))
                .toString();
        t.executeSql("CREATE MODEL reg INPUT (features ARRAY<FLOAT>) OUTPUT (y FLOAT) WITH ('provider' = 'onnx',"
                + " 'path' = '" + regressor + "')");
        t.executeSql("CREATE TEMPORARY VIEW labelled AS SELECT id, features, CAST(id AS FLOAT) AS label FROM txns");
        assertThatThrownBy(() -> t.executeSql("SELECT * FROM ML_EVALUATE(TABLE labelled, MODEL reg,"
                                + " DESCRIPTOR(label), DESCRIPTOR(features), 'regression')")
                        .collect()
                        .close())
                .hasStackTraceContaining("CannotPlanException");
    }
}
