package io.flinkonnx.flink.sql;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The batched scalar function: rows in flight share ORT runs (one per model, at most {@code maxBatchSize}
 * rows), every row is scored as its alone-run, and a bad row gets its own error or NULL while the rest of its
 * batch scores; in SQL through Flink's async scalar operator.
 */
class OnnxAsyncScoreFunctionTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    private TestModels.Mlp first;
    private TestModels.Mlp second;
    private String firstModel;
    private String secondModel;

    @BeforeEach
    void models() throws Exception {
        first = new TestModels.Mlp(4, 8, 3, 0);
        second = new TestModels.Mlp(4, 8, 3, 1);
        firstModel = first.writeTo(dir.resolve("first.onnx")).toString();
        secondModel = second.writeTo(dir.resolve("second.onnx")).toString();
    }

    private static Float[] boxed(float[] f) {
        Float[] b = new Float[f.length];
        for (int i = 0; i < f.length; i++) {
            b[i] = f[i];
        }
        return b;
    }

    private static void assertScoredAs(Object result, float[] expected, String what) {
        // the function hands Flink its internal data; SQL results come back as Float[]
        Float[] y = result instanceof ArrayData ? boxed(((ArrayData) result).toFloatArray()) : (Float[]) result;
        assertThat(y).as(what).hasSize(expected.length);
        for (int i = 0; i < y.length; i++) {
            assertThat(y[i]).as("%s output %s", what, i).isCloseTo(expected[i], within(1e-5f));
        }
    }

    @Test
    void rowsInFlightOfTwoModelsRunOncePerModelEachScoredAsItsAloneRun() throws Exception {
        OnnxAsyncScoreFunction f = new OnnxAsyncScoreFunction();
        f.prepare(null);
        try {
            List<Object[]> calls = new ArrayList<>();
            for (int id = 0; id < 40; id++) {
                calls.add(new Object[] {id % 2 == 0 ? firstModel : secondModel, boxed(TestModels.features(id, 4))});
            }
            List<CompletableFuture<Object>> results = f.scoreTogether(calls);
            long firstRuns = f.runsStarted(firstModel);
            long secondRuns = f.runsStarted(secondModel);
            f.scoreTogether(calls);
            assertThat(f.modelsOpened()).isEqualTo(2);
            assertThat(f.runsStarted(firstModel) - firstRuns)
                    .as("one run for 20 rows")
                    .isEqualTo(1);
            assertThat(f.runsStarted(secondModel) - secondRuns)
                    .as("one run for 20 rows")
                    .isEqualTo(1);
            for (int id = 0; id < 40; id++) {
                TestModels.Mlp mlp = id % 2 == 0 ? first : second;
                assertScoredAs(results.get(id).get(), mlp.reference(TestModels.features(id, 4)), "row " + id);
            }
        } finally {
            f.close();
        }
    }

    @Test
    void moreRowsInFlightThanMaxBatchSizeRunInBatchesOfAtMostMaxBatchSize() throws Exception {
        OnnxAsyncScoreFunction f = new OnnxAsyncScoreFunction(firstModel, false, 32);
        f.prepare(null);
        try {
            List<Object[]> calls = new ArrayList<>();
            for (int id = 0; id < 100; id++) {
                calls.add(new Object[] {boxed(TestModels.features(id, 4))});
            }
            f.scoreTogether(calls.subList(0, 1)); // opens the model
            long before = f.runsStarted(firstModel);
            List<CompletableFuture<Object>> results = f.scoreTogether(calls);
            assertThat(f.runsStarted(firstModel) - before)
                    .as("100 rows in runs of <= 32")
                    .isEqualTo(4);
            for (int id = 0; id < 100; id++) {
                assertScoredAs(results.get(id).get(), first.reference(TestModels.features(id, 4)), "row " + id);
            }
        } finally {
            f.close();
        }
    }

    @Test
    void aBadRowFailsAloneAndTheRestOfItsBatchIsScored() throws Exception {
        OnnxAsyncScoreFunction f = new OnnxAsyncScoreFunction(firstModel);
        f.prepare(null);
        try {
            List<Object[]> calls = new ArrayList<>();
            for (int id = 0; id < 10; id++) {
                calls.add(new Object[] {boxed(TestModels.features(id, 4))});
            }
            calls.set(3, new Object[] {new Float[] {1f, null, 2f, 3f}});
            calls.set(6, new Object[] {new Float[] {1f, 2f, 3f}});
            List<CompletableFuture<Object>> results = f.scoreTogether(calls);
            for (int id : new int[] {3, 6}) {
                assertThat(results.get(id))
                        .as("bad row %s", id)
                        .failsWithin(java.time.Duration.ZERO)
                        .withThrowableOfType(ExecutionException.class)
                        .withCauseInstanceOf(RecordConversionException.class);
            }
            for (int id = 0; id < 10; id++) {
                if (id != 3 && id != 6) {
                    assertScoredAs(results.get(id).get(), first.reference(TestModels.features(id, 4)), "row " + id);
                }
            }
        } finally {
            f.close();
        }
    }

    @Test
    void scoreOrNullInSqlReturnsNullForBadRowsAndScoresTheRestThroughTheAsyncOperator() throws Exception {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "1");
        t.getConfig().set("table.exec.async-scalar.max-concurrent-operations", "32");
        List<Row> rows = new ArrayList<>();
        for (int id = 0; id < 100; id++) {
            // bad rows: a NULL element (caught as the row is handed over) or a length the model refuses (at encoding)
            Float[] bad = id % 50 == 7 ? new Float[] {1f, null, 2f, 3f} : new Float[] {1f, 2f};
            rows.add(Row.of(id, id % 25 == 7 ? bad : boxed(TestModels.features(id, 4))));
        }
        t.createTemporaryView(
                "txns",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.INT()),
                                DataTypes.FIELD("features", DataTypes.ARRAY(DataTypes.FLOAT()))),
                        rows));
        t.executeSql("CREATE FUNCTION score_or_null AS 'io.flinkonnx.flink.sql.OnnxAsyncScoreOrNullFunction'");
        List<Row> out =
                FlinkClusters.drain(t.executeSql("SELECT id, score_or_null('" + firstModel + "', features) FROM txns")
                        .collect());
        assertThat(out).hasSize(100);
        for (Row r : out) {
            int id = (Integer) r.getField(0);
            if (id % 25 == 7) {
                assertThat(r.getField(1)).as("bad row %s", id).isNull();
            } else {
                assertScoredAs(r.getField(1), first.reference(TestModels.features(id, 4)), "row " + id);
            }
        }
    }
}
