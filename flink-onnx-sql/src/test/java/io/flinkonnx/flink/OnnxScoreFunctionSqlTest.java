package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.sql.OnnxScoreFunction;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.List;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** ONNX models as SQL scalar functions, planned by the real planner and run on a MiniCluster. */
class OnnxScoreFunctionSqlTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private String model;
    private String multi;
    private TableEnvironment t;

    @BeforeEach
    void setUp() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 3);
        model = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
        multi = TestModels.writeMultiInputMultiOutput(dir.resolve("multi.onnx")).toString();
        t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        t.executeSql("CREATE TEMPORARY VIEW v AS SELECT * FROM (VALUES"
                + " (1, CAST(0.5 AS FLOAT), CAST(-1 AS FLOAT), CAST(2 AS FLOAT), CAST(0.25 AS FLOAT)),"
                + " (2, CAST(1 AS FLOAT), CAST(1 AS FLOAT), CAST(1 AS FLOAT), CAST(1 AS FLOAT))) AS v(id, a, b, c, d)");
    }

    private List<Row> collect(String sql) throws Exception {
        return FlinkClusters.drain(t.executeSql(sql).collect());
    }

    private void assertScores(Row row, float[] x) {
        Float[] y = (Float[]) row.getField(1);
        float[] expected = mlp.reference(x);
        for (int i = 0; i < expected.length; i++) {
            assertThat(y[i]).isCloseTo(expected[i], within(1e-5f));
        }
    }

    @Test
    void sqlFunctionWithTheModelAsFirstArgumentTakesAnArrayOrScalars() throws Exception {
        t.executeSql("CREATE TEMPORARY FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction'");
        for (String call :
                new String[] {"score('" + model + "', ARRAY[a, b, c, d])", "score('" + model + "', a, b, c, d)"}) {
            List<Row> rows = collect("SELECT id, " + call + " FROM v");
            assertThat(rows).hasSize(2);
            for (Row r : rows) {
                int id = (Integer) r.getField(0);
                assertScores(r, id == 1 ? new float[] {0.5f, -1, 2, 0.25f} : new float[] {1, 1, 1, 1});
            }
        }
    }

    @Test
    void tableApiInstanceBoundToAModelReturnsARowOfNamedOutputsForSeveralOutputs() throws Exception {
        t.createTemporarySystemFunction("sum_prod", new OnnxScoreFunction(multi));
        List<Row> rows = collect("SELECT id, sum_prod(ARRAY[a, b, c, d], ARRAY[d, c, b, a]) FROM v WHERE id = 1");
        Row result = (Row) rows.get(0).getField(1);
        assertThat((Float[]) result.getField("sum")).containsExactly(0.75f, 1f, 1f, 0.75f);
        assertThat((Float[]) result.getField("prod")).containsExactly(0.125f, -2f, -2f, 0.125f);
    }

    @Test
    void wrongArityOrTypesFailAtPlanningNamingTheOnnxInput() {
        t.executeSql("CREATE TEMPORARY FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction'");
        assertThatThrownBy(() -> t.executeSql("SELECT score('" + model + "', a, b) FROM v"))
                .hasStackTraceContaining("does not take 2 scalars per row; pass one ARRAY argument");
        assertThatThrownBy(() -> t.executeSql("SELECT score('" + model + "', ARRAY[CAST(a AS DOUBLE)]) FROM v"))
                .hasStackTraceContaining("does not fit ONNX input x:FLOAT[batch,4]: expected ARRAY<FLOAT> or FLOAT"
                        + " (values are never cast)");
        t.createTemporarySystemFunction("sum_prod", new OnnxScoreFunction(multi));
        assertThatThrownBy(() -> t.executeSql("SELECT sum_prod(ARRAY[a, b, c, d], ARRAY[a], ARRAY[b]) FROM v"))
                .hasStackTraceContaining("takes 2 input(s) (a:FLOAT[batch,4], b:FLOAT[batch,4]); the call gives 3");
    }

    private static void assertScoredBy(Float[] y, TestModels.Mlp mlp, float[] x) {
        float[] expected = mlp.reference(x);
        assertThat(y).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            assertThat(y[i]).isCloseTo(expected[i], within(1e-5f));
        }
    }

    private void assertEachColumnScoredByItsOwnModel(String function) throws Exception {
        TestModels.Mlp challenger = new TestModels.Mlp(4, 8, 3, 7);
        String challengerModel =
                challenger.writeTo(dir.resolve("challenger.onnx")).toString();
        float[] x = {0.5f, -1, 2, 0.25f};
        assertThat(challenger.reference(x)).as("the two models differ").isNotEqualTo(mlp.reference(x));
        List<Row> rows = collect("SELECT " + function + "('" + model + "', ARRAY[a, b, c, d]), " + function + "('"
                + challengerModel + "', ARRAY[a, b, c, d]) FROM v WHERE id = 1");
        assertThat(rows).hasSize(1);
        assertScoredBy((Float[]) rows.get(0).getField(0), mlp, x);
        assertScoredBy((Float[]) rows.get(0).getField(1), challenger, x);
    }

    @Test
    void twoModelLiteralsInOneQueryEachScoreTheirOwnColumn() throws Exception {
        t.executeSql("CREATE TEMPORARY FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction'");
        assertEachColumnScoredByItsOwnModel("score");
    }

    @Test
    void twoModelLiteralsInOneQueryEachScoreTheirOwnColumnWithTheOrNullFunction() throws Exception {
        t.executeSql("CREATE TEMPORARY FUNCTION score_or_null AS 'io.flinkonnx.flink.sql.OnnxScoreOrNullFunction'");
        assertEachColumnScoredByItsOwnModel("score_or_null");
    }
}
