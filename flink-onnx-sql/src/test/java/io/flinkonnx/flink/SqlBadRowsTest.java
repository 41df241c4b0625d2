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
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * SQL rows the model cannot score (a NULL element, a wrong length, an empty array), the arrays real tables
 * have (nullable elements), and {@code 'on-error'} with an error column: the SQL dead-letter queue.
 */
class SqlBadRowsTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    /** One row in BAD_EVERY is bad, in one of three ways. */
    private static final int ROWS = 100;

    private static final int BAD_EVERY = 20;

    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private String model;

    @BeforeEach
    void model() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 3);
        model = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
    }

    private static boolean bad(int id) {
        return id % BAD_EVERY == 7;
    }

    /** Row {@code id}'s features, nullable elements; bad rows hold a NULL element, 3 values or one. */
    private static Float[] features(int id) {
        if (bad(id)) {
            switch ((id / BAD_EVERY) % 3) {
                case 0:
                    return new Float[] {1f, null, 2f, 3f};
                case 1:
                    return new Float[] {1f, 2f, 3f};
                default:
                    return new Float[] {1f};
            }
        }
        float[] f = TestModels.features(id, 4);
        Float[] boxed = new Float[f.length];
        for (int i = 0; i < f.length; i++) {
            boxed[i] = f[i];
        }
        return boxed;
    }

    private TableEnvironment tableEnv(boolean streaming, boolean notNullElements) {
        TableEnvironment t = TableEnvironment.create(
                streaming ? EnvironmentSettings.inStreamingMode() : EnvironmentSettings.inBatchMode());
        t.getConfig().set("parallelism.default", "2");
        List<Row> rows = new ArrayList<>();
        for (int id = 0; id < ROWS; id++) {
            if (!(notNullElements && bad(id))) {
                rows.add(Row.of(id, features(id)));
            }
        }
        t.createTemporaryView(
                "raw_txns",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.INT()),
                                DataTypes.FIELD("features", DataTypes.ARRAY(DataTypes.FLOAT()))),
                        rows));
        String features = notNullElements ? "CAST(features AS ARRAY<FLOAT NOT NULL>)" : "features";
        t.executeSql("CREATE TEMPORARY VIEW txns AS SELECT id, " + features + " AS features FROM raw_txns");
        return t;
    }

    private void assertScoredAsReference(int id, Float[] y) {
        float[] expected = mlp.reference(TestModels.features(id, 4));
        assertThat(y).as("row %s", id).hasSize(expected.length);
        for (int i = 0; i < y.length; i++) {
            assertThat(y[i]).as("row %s output %s", id, i).isCloseTo(expected[i], within(1e-5f));
        }
    }

    @ParameterizedTest(name = "streaming={0}, async={1}")
    @CsvSource({"true,true", "true,false", "false,true", "false,false"})
    void onErrorNullEmitsBadRowsWithNullOutputsAndTheReasonInTheErrorColumn(boolean streaming, boolean async)
            throws Exception {
        TableEnvironment t = tableEnv(streaming, false);
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>, onnx_error STRING)"
                + " WITH ('provider' = 'onnx', 'path' = '" + model + "', 'batch.max-size' = '16',"
                + " 'on-error' = 'null', 'error-column' = 'onnx_error')");
        List<Row> rows = FlinkClusters.drain(t.executeSql("SELECT id, y, onnx_error FROM ML_PREDICT(TABLE txns, MODEL"
                        + " mlp, DESCRIPTOR(features), MAP['async', '" + async + "'])")
                .collect());
        assertThat(rows).hasSize(ROWS);
        int badRows = 0;
        for (Row r : rows) {
            int id = (Integer) r.getField(0);
            if (bad(id)) {
                badRows++;
                assertThat(r.getField(1)).as("outputs of bad row %s", id).isNull();
                assertThat((String) r.getField(2))
                        .as("reason of bad row %s", id)
                        .isNotBlank();
            } else {
                assertThat(r.getField(2)).as("error of good row %s", id).isNull();
                assertScoredAsReference(id, (Float[]) r.getField(1));
            }
        }
        assertThat(badRows).isEqualTo(ROWS / BAD_EVERY);
        List<String> reasons = new ArrayList<>();
        rows.stream().filter(r -> r.getField(2) != null).forEach(r -> reasons.add((String) r.getField(2)));
        assertThat(reasons).anySatisfy(m -> assertThat(m).contains("Element 1 of column 'features' is NULL"));
        assertThat(reasons).anySatisfy(m -> assertThat(m).contains("expects 4 values per record"));
    }

    @ParameterizedTest(name = "streaming={0}, async={1}")
    @CsvSource({"true,true", "true,false", "false,true", "false,false"})
    void onErrorSkipDropsBadRowsAndScoresTheRest(boolean streaming, boolean async) throws Exception {
        TableEnvironment t = tableEnv(streaming, false);
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' ="
                + " 'onnx', 'path' = '" + model + "', 'batch.max-size' = '16', 'on-error' = 'skip')");
        List<Row> rows = FlinkClusters.drain(t.executeSql("SELECT id, y FROM ML_PREDICT(TABLE txns, MODEL mlp,"
                        + " DESCRIPTOR(features), MAP['async', '" + async + "'])")
                .collect());
        assertThat(rows).hasSize(ROWS - ROWS / BAD_EVERY);
        for (Row r : rows) {
            int id = (Integer) r.getField(0);
            assertThat(bad(id)).as("row %s is good", id).isFalse();
            assertScoredAsReference(id, (Float[]) r.getField(1));
        }
    }

    @ParameterizedTest(name = "async={0}")
    @CsvSource({"true", "false"})
    void onErrorFailFailsTheJobWithTheReason(boolean async) {
        TableEnvironment t = tableEnv(true, false);
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' ="
                + " 'onnx', 'path' = '" + model + "')");
        assertThatThrownBy(() -> FlinkClusters.drain(t.executeSql("SELECT id, y FROM ML_PREDICT(TABLE txns, MODEL"
                                + " mlp, DESCRIPTOR(features), MAP['async', '" + async + "'])")
                        .collect()))
                .hasStackTraceContaining("io.flinkonnx.flink.RecordConversionException");
    }

    @ParameterizedTest(name = "notNullElements={0}")
    @CsvSource({"true", "false"})
    void theScalarFunctionTakesArraysWithNullableAndNotNullElements(boolean notNullElements) throws Exception {
        TableEnvironment t = tableEnv(true, notNullElements);
        t.executeSql("CREATE TEMPORARY VIEW good AS SELECT * FROM txns WHERE MOD(id, " + BAD_EVERY + ") <> 7");
        t.executeSql("CREATE FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction'");
        List<Row> rows = FlinkClusters.drain(t.executeSql("SELECT id, score('" + model + "', features) FROM good")
                .collect());
        assertThat(rows).hasSize(ROWS - ROWS / BAD_EVERY);
        for (Row r : rows) {
            assertScoredAsReference((Integer) r.getField(0), (Float[]) r.getField(1));
        }
    }

    @Test
    void scoreOrNullReturnsNullForBadRowsAndScoresTheRest() throws Exception {
        TableEnvironment t = tableEnv(true, false);
        t.executeSql("CREATE FUNCTION score_or_null AS 'io.flinkonnx.flink.sql.OnnxScoreOrNullFunction'");
        List<Row> rows =
                FlinkClusters.drain(t.executeSql("SELECT id, score_or_null('" + model + "', features) FROM txns")
                        .collect());
        assertThat(rows).hasSize(ROWS);
        for (Row r : rows) {
            int id = (Integer) r.getField(0);
            if (bad(id)) {
                assertThat(r.getField(1)).as("bad row %s", id).isNull();
            } else {
                assertScoredAsReference(id, (Float[]) r.getField(1));
            }
        }
    }

    @Test
    void anErrorColumnThatIsNotAnOutputColumnIsRefusedAtPlanning() {
        TableEnvironment t = tableEnv(true, false);
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' ="
                + " 'onnx', 'path' = '" + model + "', 'on-error' = 'null', 'error-column' = 'why')");
        assertThatThrownBy(
                        () -> t.executeSql("SELECT id, y FROM ML_PREDICT(TABLE txns, MODEL mlp, DESCRIPTOR(features))")
                                .collect()
                                .close())
                .hasStackTraceContaining("'error-column' = 'why' is not one of its OUTPUT columns");
    }
}
