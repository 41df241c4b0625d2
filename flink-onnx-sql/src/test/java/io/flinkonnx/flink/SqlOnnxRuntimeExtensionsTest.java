package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

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
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code 'extensions' = 'true'}: a model carrying its pre-processing as ONNX Runtime Extensions custom operators
 * scores a STRING column through ML_PREDICT, equal to an independent computation; NULL text follows 'on-error'.
 */
class SqlOnnxRuntimeExtensionsTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final String[] TEXTS = {
        "order 12345 shipped", "", "no digits", "a1b22c333", "Größe 42, Preis 9,99 €", null, "2026-12-04", "тест 7"
    };

    @TempDir
    Path dir;

    private String model;

    @BeforeEach
    void model() throws Exception {
        model = TestModels.writeDigitRunLength(dir.resolve("digits.onnx")).toString();
    }

    /** The model's computation without ORT: code points once each run of digits is one '#'. */
    private static float reference(String text) {
        String masked = text.replaceAll("[0-9]+", "#");
        return masked.codePointCount(0, masked.length());
    }

    private static TableEnvironment messages() {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        List<Row> rows = new ArrayList<>();
        for (int id = 0; id < TEXTS.length; id++) {
            rows.add(Row.of(id, TEXTS[id]));
        }
        t.createTemporaryView(
                "messages",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.INT()), DataTypes.FIELD("text", DataTypes.STRING())),
                        rows));
        return t;
    }

    @ParameterizedTest(name = "async={0}")
    @ValueSource(booleans = {true, false})
    void aStringColumnScoresThroughCustomOperatorsLikeAnIndependentComputation(boolean async) throws Exception {
        TableEnvironment t = messages();
        t.executeSql("CREATE MODEL digits INPUT (text STRING) OUTPUT (length FLOAT, onnx_error STRING) WITH ("
                + "'provider' = 'onnx', 'path' = '" + model + "', 'extensions' = 'true', 'batch.max-size' = '4',"
                + " 'on-error' = 'null', 'error-column' = 'onnx_error')");
        List<Row> rows = FlinkClusters.drain(t.executeSql("SELECT id, length, onnx_error FROM ML_PREDICT(TABLE"
                        + " messages, MODEL digits, DESCRIPTOR(text), MAP['async', '" + async + "'])")
                .collect());
        assertThat(rows).hasSize(TEXTS.length);
        for (Row r : rows) {
            int id = (Integer) r.getField(0);
            if (TEXTS[id] == null) {
                assertThat(r.getField(1)).isNull();
                assertThat((String) r.getField(2)).contains("Column 'text' is NULL; ONNX input 'text' needs a value");
            } else {
                assertThat(r.getField(2)).as("error of row %s", id).isNull();
                assertThat((Float) r.getField(1)).as("row %s", id).isEqualTo(reference(TEXTS[id]));
            }
        }
    }

    @Test
    void withoutTheOptionTheJobFailsSayingToSetIt() {
        TableEnvironment t = messages();
        t.executeSql("CREATE MODEL digits INPUT (text STRING) OUTPUT (length FLOAT) WITH ("
                + "'provider' = 'onnx', 'path' = '" + model + "')");
        assertThatThrownBy(() -> FlinkClusters.drain(t.executeSql(
                                "SELECT id, length FROM ML_PREDICT(TABLE messages, MODEL digits, DESCRIPTOR(text))")
                        .collect()))
                .hasStackTraceContaining("custom operator ai.onnx.contrib:StringRegexReplace")
                .hasStackTraceContaining("'extensions' = 'true' in SQL");
    }
}
