package io.flinkonnx.flink.sql;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.text.testing.TextModels;
import io.flinkonnx.flink.text.testing.TextReference;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Text models in SQL ({@code 'tokenizer'}): ML_PREDICT's sync and async runtimes give the embeddings and labels of
 * the independent reference (DJL's tokenizer used directly, a plain ORT session per text, pooling in the test); a
 * NULL or empty text is handled by {@code 'on-error'}.
 */
class TextModelSqlTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    static final List<String> TEXTS = List.of(
            "Good movie.",
            "The service was very late and the order was terrible, I want a refund please!",
            "flink streams text",
            "I love this film but not the ending",
            "zqx 42 thanks");

    @TempDir
    Path dir;

    Path encoder;
    Path classifier;
    Path tokenizer;
    Path config;

    @BeforeEach
    void write() throws Exception {
        encoder = TextModels.writeEncoder(dir.resolve("encoder.onnx"));
        classifier = TextModels.writeClassifier(dir.resolve("classifier.onnx"));
        tokenizer = TextModels.writeTokenizer(dir.resolve("tokenizer.json"));
        config = TextModels.writeConfig(dir.resolve("config.json"));
    }

    /** {@code docs (id INT, body STRING)}: the texts, then a NULL and an empty text. */
    static TableEnvironment withDocs() {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < TEXTS.size(); i++) {
            rows.add(Row.of(i, TEXTS.get(i)));
        }
        rows.add(Row.of(TEXTS.size(), null));
        rows.add(Row.of(TEXTS.size() + 1, ""));
        t.createTemporaryView(
                "docs",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.INT()), DataTypes.FIELD("body", DataTypes.STRING())),
                        rows));
        return t;
    }

    private static Map<Integer, Row> byId(List<Row> rows) {
        Map<Integer, Row> m = new HashMap<>();
        rows.forEach(r -> m.put((Integer) r.getField(0), r));
        return m;
    }

    private static float[] floats(Object boxed) {
        Float[] b = (Float[]) boxed;
        float[] f = new float[b.length];
        for (int i = 0; i < b.length; i++) {
            f[i] = b[i];
        }
        return f;
    }

    @Test
    void embeddingsFromSyncAndAsyncMlPredictEqualTheReferenceAndBadTextsGetTheirReason() throws Exception {
        TableEnvironment t = withDocs();
        t.executeSql("CREATE MODEL embedder INPUT (body STRING) OUTPUT (embedding ARRAY<FLOAT>, onnx_error STRING)"
                + " WITH ('provider' = 'onnx', 'path' = '" + encoder + "', 'tokenizer' = '" + tokenizer + "',"
                + " 'pooling' = 'mean', 'normalize' = 'true', 'max-length' = '32', 'on-error' = 'null',"
                + " 'error-column' = 'onnx_error')");
        for (String async : List.of("true", "false")) {
            List<Row> rows = FlinkClusters.drain(
                    t.executeSql("SELECT id, embedding, onnx_error FROM ML_PREDICT(TABLE docs, MODEL embedder,"
                                    + " DESCRIPTOR(body), MAP['async', '" + async + "'])")
                            .collect());
            Map<Integer, Row> byId = byId(rows);
            assertThat(byId).as("async=" + async).hasSize(TEXTS.size() + 2);
            try (TextReference reference = new TextReference(encoder, tokenizer, 32)) {
                for (int i = 0; i < TEXTS.size(); i++) {
                    assertThat(floats(byId.get(i).getField(1)))
                            .as("async=%s, %s", async, TEXTS.get(i))
                            .containsExactly(reference.meanEmbedding(TEXTS.get(i), true), within(1e-5f));
                    assertThat(byId.get(i).getField(2)).isNull();
                }
            }
            assertThat(byId.get(TEXTS.size()).getField(1)).isNull();
            assertThat(byId.get(TEXTS.size()).getField(2))
                    .isEqualTo("Column 'body' is NULL: there is no text to score");
            assertThat(byId.get(TEXTS.size() + 1).getField(1)).isNull();
            assertThat(byId.get(TEXTS.size() + 1).getField(2))
                    .isEqualTo("The text is empty: there is nothing to tokenize");
        }
    }

    @Test
    void labelsFromSyncAndAsyncMlPredictEqualTheReferenceAndBadTextsAreSkipped() throws Exception {
        TableEnvironment t = withDocs();
        t.executeSql("CREATE MODEL sentiment INPUT (body STRING) OUTPUT (label STRING, score FLOAT)"
                + " WITH ('provider' = 'onnx', 'path' = '" + classifier + "', 'tokenizer' = '" + tokenizer + "',"
                + " 'labels.config' = '" + config + "', 'on-error' = 'skip')");
        for (String async : List.of("true", "false")) {
            Map<Integer, Row> byId = byId(FlinkClusters.drain(t.executeSql(
                            "SELECT id, label, score FROM ML_PREDICT(TABLE docs, MODEL sentiment, DESCRIPTOR(body),"
                                    + " MAP['async', '" + async + "'])")
                    .collect()));
            assertThat(byId).as("async=" + async).hasSize(TEXTS.size());
            try (TextReference reference = new TextReference(classifier, tokenizer, 512)) {
                for (int i = 0; i < TEXTS.size(); i++) {
                    Object[] expected = reference.topLabel(TEXTS.get(i));
                    assertThat(byId.get(i).getField(1)).as(TEXTS.get(i)).isEqualTo(expected[0]);
                    assertThat((Float) byId.get(i).getField(2)).isCloseTo((Float) expected[2], within(1e-5f));
                }
            }
        }
    }

    @Test
    void aTokenizerThatDoesNotFitTheModelFailsThePlanNamingBothFiles() throws Exception {
        Path small = TextModels.writeEncoder(dir.resolve("small.onnx"), 20);
        TableEnvironment t = withDocs();
        t.executeSql("CREATE MODEL small INPUT (body STRING) OUTPUT (embedding ARRAY<FLOAT>)"
                + " WITH ('provider' = 'onnx', 'path' = '" + small + "', 'tokenizer' = '" + tokenizer + "')");
        assertThatThrownBy(() -> t.executeSql("SELECT * FROM ML_PREDICT(TABLE docs, MODEL small, DESCRIPTOR(body))"))
                .rootCause()
                .hasMessageContaining("The tokenizer " + tokenizer + " does not fit model " + small)
                .hasMessageContaining("has " + TextModels.vocabularySize() + " tokens")
                .hasMessageContaining("has 20 rows");
    }

    @Test
    void textOptionsWithoutATokenizerAreRefusedNamingTheOption() throws Exception {
        TableEnvironment t = withDocs();
        t.executeSql("CREATE MODEL wrong INPUT (body STRING) OUTPUT (embedding ARRAY<FLOAT>)"
                + " WITH ('provider' = 'onnx', 'path' = '" + encoder + "', 'pooling' = 'cls')");
        assertThatThrownBy(() -> t.executeSql("SELECT * FROM ML_PREDICT(TABLE docs, MODEL wrong, DESCRIPTOR(body))"))
                .rootCause()
                .hasMessageContaining("'pooling' is an option of text models; set 'tokenizer'");
    }
}
