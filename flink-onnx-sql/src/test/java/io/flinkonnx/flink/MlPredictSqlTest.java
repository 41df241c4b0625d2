package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
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

/** {@code CREATE MODEL ... WITH ('provider'='onnx')} and ML_PREDICT on the real planner and a MiniCluster. */
class MlPredictSqlTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private String model;

    @BeforeEach
    void model() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 3);
        model = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
    }

    private static float[] features(int k) {
        return TestModels.features(k, 4);
    }

    private static String valuesSql(int n) {
        return IntStream.range(0, n)
                .mapToObj(k -> {
                    float[] f = features(k);
                    StringBuilder sb = new StringBuilder("(" + k + ", ARRAY[");
                    for (int i = 0; i < f.length; i++) {
                        sb.append(i == 0 ? "" : ", ")
                                .append(String.format(Locale.ROOT, "CAST(%s AS FLOAT)", Float.toString(f[i])));
                    }
                    return sb.append("])").toString();
                })
                .collect(Collectors.joining(", "));
    }

    private TableEnvironment tableEnv(boolean streaming) {
        TableEnvironment t = TableEnvironment.create(
                streaming ? EnvironmentSettings.inStreamingMode() : EnvironmentSettings.inBatchMode());
        t.getConfig().set("parallelism.default", "2");
        t.executeSql("CREATE TEMPORARY VIEW txns AS SELECT * FROM (VALUES " + valuesSql(40) + ") AS v(id, features)");
        return t;
    }

    @ParameterizedTest(name = "streaming={0}, async={1}")
    @CsvSource({"true,true", "true,false", "false,true", "false,false"})
    void mlPredictScoresEveryRowAsTheReferenceDoes(boolean streaming, boolean async) throws Exception {
        TableEnvironment t = tableEnv(streaming);
        t.executeSql("CREATE MODEL mlp INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' = 'onnx',"
                + " 'path' = '" + model + "', 'batch.max-size' = '8')");
        List<Row> rows = FlinkClusters.drain(t.executeSql("SELECT id, y FROM ML_PREDICT(TABLE txns, MODEL mlp,"
                        + " DESCRIPTOR(features), MAP['async', '" + async + "'])")
                .collect());
        assertThat(rows).hasSize(40);
        for (Row r : rows) {
            int id = (Integer) r.getField(0);
            Float[] y = (Float[]) r.getField(1);
            float[] expected = mlp.reference(features(id));
            for (int i = 0; i < expected.length; i++) {
                assertThat(y[i]).isCloseTo(expected[i], within(1e-5f));
            }
        }
        assertThat(SessionStats.open()).isZero();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(
            delimiter = '|',
            value = {
                "features ARRAY<DOUBLE>|CAST(features AS ARRAY<DOUBLE>) AS features|features|INPUT column 'features' (ARRAY<DOUBLE>) is bound to ONNX input x:FLOAT[batch,4]: the types differ (DOUBLE vs FLOAT); declare the column as FLOAT or ARRAY<FLOAT>",
                "f FLOAT|features[1] AS f|f|INPUT column 'f' (FLOAT) is bound to ONNX input x:FLOAT[batch,4]: a scalar column needs a [batch] or [batch,1] tensor, this one takes [4] per record; declare the column as ARRAY<FLOAT>",
                "a ARRAY<FLOAT>, b ARRAY<FLOAT>|features AS a, features AS b|a, b|INPUT columns [a, b] match neither the ONNX input names nor their count: the model has x:FLOAT[batch,4]"
            })
    void schemaThatDoesNotFitTheModelFailsAtPlanningNamingTheColumn(
            String input, String select, String columns, String message) {
        TableEnvironment t = tableEnv(true);
        t.executeSql("CREATE TEMPORARY VIEW shaped AS SELECT id, " + select + " FROM txns");
        t.executeSql("CREATE MODEL bad INPUT (" + input
                + ") OUTPUT (y ARRAY<FLOAT>) WITH ('provider' = 'onnx', 'path' = '" + model + "')");
        assertThatThrownBy(() -> t.executeSql(
                                "SELECT * FROM ML_PREDICT(TABLE shaped, MODEL bad, DESCRIPTOR(" + columns + "))")
                        .await())
                .satisfies(e -> assertThat(rootMessages(e)).contains(message));
    }

    @Test
    void goldenVectorsOptionIsCheckedWhenTheFunctionOpens() throws Exception {
        TableEnvironment t = tableEnv(true);
        Path missing = dir.resolve("no-such-golden");
        t.executeSql(
                "CREATE MODEL checked INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' = 'onnx',"
                        + " 'path' = '" + model + "', 'drift.golden-vectors' = '" + missing + "')");
        assertThatThrownBy(
                        () -> t.executeSql("SELECT * FROM ML_PREDICT(TABLE txns, MODEL checked, DESCRIPTOR(features),"
                                        + " MAP['async', 'false'])")
                                .await())
                .satisfies(e -> assertThat(rootMessages(e)).contains("Golden vectors folder not found: " + missing));
    }

    private static String rootMessages(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            sb.append(t.getMessage()).append('\n');
        }
        return sb.toString();
    }
}
