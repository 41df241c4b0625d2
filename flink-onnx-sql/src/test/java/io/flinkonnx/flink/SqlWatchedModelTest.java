package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** {@code CREATE MODEL ... WITH ('path' = <folder>, 'watch.interval' = ...)} on the real planner. */
class SqlWatchedModelTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final TestModels.Mlp V1 = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp V2 = new TestModels.Mlp(4, 8, 2, 2);

    @TempDir
    Path dir;

    private Path folder() throws Exception {
        Path folder = Files.createDirectories(dir.resolve("fraud"));
        V1.writeTo(folder.resolve("fraud-1.onnx"));
        V2.writeTo(folder.resolve("fraud-2.onnx"));
        Files.writeString(folder.resolve(".fraud-3.onnx.tmp"), "a version being written: ignored");
        return folder;
    }

    @Test
    void aWatchedFolderServesItsNewestVersionAndEachRowNamesIt() throws Exception {
        Path folder = folder();
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        float[] x = TestModels.features(2, 4);
        StringBuilder array = new StringBuilder();
        for (float v : x) {
            array.append(array.length() == 0 ? "" : ", ")
                    .append(String.format(Locale.ROOT, "CAST(%s AS FLOAT)", Float.toString(v)));
        }
        t.executeSql("CREATE TEMPORARY VIEW txns AS SELECT * FROM (VALUES (1, ARRAY[" + array + "]), (2, ARRAY[" + array
                + "])) AS v(id, features)");
        t.executeSql("CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>, version STRING)"
                + " WITH ('provider' = 'onnx', 'path' = '" + folder + "', 'watch.interval' = '1 min',"
                + " 'model-version-column' = 'version')");
        List<Row> rows = FlinkClusters.drain(
                t.executeSql("SELECT id, y, version FROM ML_PREDICT(TABLE txns, MODEL fraud, DESCRIPTOR(features))")
                        .collect());
        assertThat(rows).hasSize(2);
        float[] expected = V2.reference(x);
        for (Row r : rows) {
            assertThat(r.getField(2)).isEqualTo("fraud-2");
            Float[] y = (Float[]) r.getField(1);
            for (int i = 0; i < expected.length; i++) {
                assertThat(y[i]).isCloseTo(expected[i], within(1e-5f));
            }
        }
        assertThat(SessionStats.open()).isZero();
    }

    @Test
    void aWatchedFolderCannotAlsoBePinnedOrLabelled() throws Exception {
        Path folder = folder();
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.executeSql("CREATE TEMPORARY VIEW txns AS SELECT * FROM (VALUES (1, ARRAY[CAST(1 AS FLOAT)])) AS v(id, f)");
        t.executeSql("CREATE MODEL fraud INPUT (f ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH ('provider' = 'onnx',"
                + " 'path' = '" + folder + "', 'watch.interval' = '1 min', 'model-version' = 'v9')");
        assertThatThrownBy(() -> t.executeSql("SELECT * FROM ML_PREDICT(TABLE txns, MODEL fraud, DESCRIPTOR(f))"))
                .hasStackTraceContaining("with 'watch.interval' each version is named by the folder");
    }

    @Test
    void aVersionFolderWhoseFileIsNotModelOnnxIsNamedByTheFolderFromTheFirstRow() throws Exception {
        // fraud-2/fraud.onnx: the file's own label would be "fraud", the folder's (what every poll says) "fraud-2"
        Path folder = Files.createDirectories(dir.resolve("fraud"));
        V1.writeTo(Files.createDirectories(folder.resolve("fraud-1")).resolve("fraud.onnx"));
        V2.writeTo(Files.createDirectories(folder.resolve("fraud-2")).resolve("fraud.onnx"));
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "1");
        StringBuilder values = new StringBuilder();
        for (int id = 0; id < 3; id++) {
            float[] x = TestModels.features(id, 4);
            StringBuilder array = new StringBuilder();
            for (float v : x) {
                array.append(array.length() == 0 ? "" : ", ")
                        .append(String.format(Locale.ROOT, "CAST(%s AS FLOAT)", Float.toString(v)));
            }
            values.append(id == 0 ? "" : ", ")
                    .append("(")
                    .append(id)
                    .append(", ARRAY[")
                    .append(array)
                    .append("])");
        }
        t.executeSql("CREATE TEMPORARY VIEW txns AS SELECT * FROM (VALUES " + values + ") AS v(id, features)");
        t.executeSql("CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>, version STRING)"
                + " WITH ('provider' = 'onnx', 'path' = '" + folder + "', 'watch.interval' = '1 min',"
                + " 'model-version-column' = 'version')");
        for (String async : new String[] {"false", "true"}) {
            List<Row> rows = FlinkClusters.drain(t.executeSql("SELECT id, y, version FROM ML_PREDICT(TABLE txns,"
                            + " MODEL fraud, DESCRIPTOR(features), MAP['async', '" + async + "'])")
                    .collect());
            assertThat(rows).as("async = " + async).hasSize(3).allSatisfy(r -> assertThat(r.getField(2))
                    .isEqualTo("fraud-2"));
        }
        assertThat(SessionStats.open()).isZero();
    }
}
