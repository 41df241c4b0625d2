package io.flinkonnx.flink.sql;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.text.testing.TextModels;
import io.flinkonnx.flink.text.testing.TextReference;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The SQL samples of README and {@code docs/sql.md} run as printed, on a real planner and MiniCluster, with the
 * parts that need infrastructure replaced: the model URI by a model made here (an MLP, 4 features in, 2 out), the
 * {@code transactions} table by rows given here, and Kafka sinks by {@code blackhole}. The SQL Client's
 * {@code score.sql} block runs in {@code SqlClientIT} on a standalone cluster.
 */
class DocsSqlSamplesTest {
    private static final int ROWS = 6;
    private static final Path README = Path.of("../README.md");
    private static final Path SQL_GUIDE = Path.of("../docs/sql.md");
    private static final Path TEXT_GUIDE = Path.of("../docs/text.md");

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private String model;

    @BeforeEach
    void writeModel() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 2);
        model = mlp.writeTo(dir.resolve("fraud.onnx")).toString();
    }

    /** A table environment with {@code transactions (id, features, f1 .. f4)} holding {@link #ROWS} rows. */
    private TableEnvironment withTransactions() {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        List<Row> rows = new ArrayList<>();
        for (int id = 0; id < ROWS; id++) {
            float[] f = TestModels.features(id, 4);
            rows.add(Row.of("t" + id, new Float[] {f[0], f[1], f[2], f[3]}, f[0], f[1], f[2], f[3]));
        }
        t.createTemporaryView(
                "transactions",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.STRING()),
                                DataTypes.FIELD("features", DataTypes.ARRAY(DataTypes.FLOAT())),
                                DataTypes.FIELD("f1", DataTypes.FLOAT()),
                                DataTypes.FIELD("f2", DataTypes.FLOAT()),
                                DataTypes.FIELD("f3", DataTypes.FLOAT()),
                                DataTypes.FIELD("f4", DataTypes.FLOAT())),
                        rows));
        return t;
    }

    /** The statements of a block, its comments dropped; a statement set stays one statement. */
    static List<String> statements(String block) {
        List<String> statements = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        boolean inSet = false;
        for (String line : block.lines().toList()) {
            int comment = line.indexOf("--");
            String code = (comment >= 0 ? line.substring(0, comment) : line).stripTrailing();
            if (code.isBlank()) {
                continue;
            }
            current.append(code).append('\n');
            inSet |= code.strip().startsWith("EXECUTE STATEMENT SET");
            boolean ends = inSet ? code.strip().equals("END;") : code.endsWith(";");
            if (ends) {
                String s = current.toString().strip();
                statements.add(inSet ? s.substring(0, s.length() - 1) : s.substring(0, s.length() - 1));
                current.setLength(0);
                inSet = false;
            }
        }
        assertThat(current.toString()).as("an unterminated statement").isBlank();
        return statements;
    }

    /** The sample's statements with the model made here, the given transactions and blackhole Kafka sinks. */
    private List<String> runnable(String block) {
        List<String> out = new ArrayList<>();
        for (String s : statements(block)) {
            if (s.startsWith("CREATE TABLE transactions")) {
                continue; // the rows given here
            }
            s = s.replace("s3://models/fraud.onnx", model)
                    .replaceAll("WITH \\('connector' = 'kafka'[^;]*\\)$", "WITH ('connector' = 'blackhole')");
            out.add(s);
        }
        return out;
    }

    private List<Row> collect(TableResult result) throws Exception {
        return FlinkClusters.drain(result.collect());
    }

    private void assertScores(List<Row> rows, int column) {
        assertThat(rows).hasSize(ROWS);
        for (Row r : rows) {
            int id = Integer.parseInt(((String) r.getField(0)).substring(1));
            Float[] y = (Float[]) r.getField(column);
            float[] expected = mlp.reference(TestModels.features(id, 4));
            for (int i = 0; i < expected.length; i++) {
                assertThat(y[i]).as("row %s output %s", id, i).isCloseTo(expected[i], within(1e-5f));
            }
        }
    }

    private static List<String> sqlBlocks(Path doc) throws Exception {
        return blocks(Files.readString(doc));
    }

    static List<String> blocks(String markdown) {
        List<String> blocks = new ArrayList<>();
        List<String> lines = markdown.lines().toList();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).strip().equals("```sql")) {
                StringBuilder block = new StringBuilder();
                for (i++; i < lines.size() && !lines.get(i).strip().startsWith("```"); i++) {
                    block.append(lines.get(i)).append('\n');
                }
                blocks.add(block.toString());
            }
        }
        return blocks;
    }

    @Test
    void theSamplesAreTheOnesThisTestRuns() throws Exception {
        assertThat(sqlBlocks(README)).hasSize(1);
        assertThat(sqlBlocks(SQL_GUIDE))
                .hasSize(5)
                .last()
                .asString()
                .as("the SQL Client's score.sql, run by SqlClientIT")
                .contains("'properties.bootstrap.servers' = 'kafka:9092'");
        assertThat(sqlBlocks(SQL_GUIDE).get(0)).isEqualTo(sqlBlocks(README).get(0));
    }

    @Test
    void createModelAndMlPredictScoresEveryTransaction() throws Exception {
        TableEnvironment t = withTransactions();
        List<String> statements = runnable(sqlBlocks(SQL_GUIDE).get(0));
        assertThat(statements).hasSize(2);
        t.executeSql(statements.get(0));
        assertScores(collect(t.executeSql(statements.get(1))), 1);
    }

    @Test
    void theDeadLetterPipelineRunsAsAStatementSet() throws Exception {
        TableEnvironment t = withTransactions();
        List<String> statements = runnable(sqlBlocks(SQL_GUIDE).get(1));
        assertThat(statements).hasSize(5).last().asString().startsWith("EXECUTE STATEMENT SET");
        for (String s : statements.subList(0, 4)) {
            t.executeSql(s);
        }
        t.executeSql(statements.get(4)).await();
        // the view the sample defines scores every row, its error column NULL
        List<Row> scored = collect(t.executeSql("SELECT id, probabilities, onnx_error, model_version FROM scored"));
        assertScores(scored, 1);
        assertThat(scored).allSatisfy(r -> {
            assertThat(r.getField(2)).isNull();
            assertThat(r.getField(3)).isEqualTo("fraud-7");
        });
    }

    @Test
    void theScalarFunctionsScoreAnArrayOrScalarsOfOneRow() throws Exception {
        TableEnvironment t = withTransactions();
        List<String> statements = runnable(sqlBlocks(SQL_GUIDE).get(3));
        assertThat(statements).hasSize(6);
        t.executeSql(statements.get(0));
        t.executeSql(statements.get(3));
        assertScores(collect(t.executeSql(statements.get(1))), 1);
        assertScores(collect(t.executeSql(statements.get(2))), 1);
        t.executeSql(statements.get(4)); // the batched async scalar function
        assertScores(collect(t.executeSql(statements.get(5))), 1);
    }

    @Test
    void theTextSampleScoresAStringColumnThroughCustomOperators() throws Exception {
        String digits = TestModels.writeDigitRunLength(dir.resolve("digit-run-length.onnx"))
                .toString();
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        String[] texts = {"order 12345 shipped", "a1b22c333", "kein Preis"};
        List<Row> rows = new ArrayList<>();
        for (int id = 0; id < texts.length; id++) {
            rows.add(Row.of("m" + id, texts[id]));
        }
        t.createTemporaryView(
                "messages",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.STRING()), DataTypes.FIELD("text", DataTypes.STRING())),
                        rows));
        List<String> statements = new ArrayList<>();
        for (String s : statements(sqlBlocks(SQL_GUIDE).get(2))) {
            statements.add(s.replace("s3://models/digit-run-length.onnx", digits));
        }
        assertThat(statements).hasSize(2);
        t.executeSql(statements.get(0));
        List<Row> scored = collect(t.executeSql(statements.get(1)));
        assertThat(scored).hasSize(texts.length).allSatisfy(r -> {
            String masked = ((String) r.getField(1)).replaceAll("[0-9]+", "#");
            assertThat((Float) r.getField(2)).isEqualTo((float) masked.codePointCount(0, masked.length()));
        });
    }

    @Test
    void theTextSamplesEmbedAndLabelTicketsAsTheReference() throws Exception {
        Path encoder = TextModels.writeEncoder(dir.resolve("encoder.onnx"));
        Path classifier = TextModels.writeClassifier(dir.resolve("classifier.onnx"));
        Path tokenizer = TextModels.writeTokenizer(dir.resolve("tokenizer.json"));
        Path config = TextModels.writeConfig(dir.resolve("config.json"));
        List<String> blocks = sqlBlocks(TEXT_GUIDE);
        assertThat(blocks).hasSize(1);
        List<String> statements = new ArrayList<>();
        for (String s : statements(blocks.get(0))) {
            statements.add(s.replace("s3://models/minilm/model.onnx", encoder.toString())
                    .replace("s3://models/minilm/tokenizer.json", tokenizer.toString())
                    .replace("s3://models/sentiment/model.onnx", classifier.toString())
                    .replace("s3://models/sentiment/tokenizer.json", tokenizer.toString())
                    .replace("s3://models/sentiment/config.json", config.toString()));
        }
        assertThat(statements).hasSize(4);
        List<String> texts = List.of("the order was late, i want a refund", "great film", " ");
        TableEnvironment t = withTickets(texts);
        t.executeSql(statements.get(0));
        List<Row> embedded = collect(t.executeSql(statements.get(1)));
        assertThat(embedded).hasSize(3);
        try (TextReference reference = new TextReference(encoder, tokenizer, 256)) {
            for (Row r : embedded) {
                int id = Integer.parseInt(((String) r.getField(0)).substring(1));
                if (id == 2) {
                    assertThat(r.getField(1)).isNull();
                    assertThat((String) r.getField(2))
                            .startsWith("The text tokenizes to no tokens but the special ones");
                    continue;
                }
                Float[] y = (Float[]) r.getField(1);
                float[] expected = reference.meanEmbedding(texts.get(id), true);
                for (int i = 0; i < expected.length; i++) {
                    assertThat(y[i]).isCloseTo(expected[i], within(1e-5f));
                }
                assertThat(r.getField(2)).isNull();
            }
        }
        // The classifier's sample keeps 'on-error' = 'fail': good texts only.
        TableEnvironment good = withTickets(texts.subList(0, 2));
        good.executeSql(statements.get(2));
        List<Row> labelled = collect(good.executeSql(statements.get(3)));
        assertThat(labelled).hasSize(2);
        try (TextReference reference = new TextReference(classifier, tokenizer, 512)) {
            for (Row r : labelled) {
                Object[] expected =
                        reference.topLabel(texts.get(Integer.parseInt(((String) r.getField(0)).substring(1))));
                assertThat(r.getField(1)).isEqualTo(expected[0]);
                assertThat((Float) r.getField(2)).isCloseTo((Float) expected[2], within(1e-5f));
            }
        }
    }

    /** A table environment with {@code tickets (id, body)} holding {@code texts}, ids {@code t0, t1, ...}. */
    private static TableEnvironment withTickets(List<String> texts) {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            rows.add(Row.of("t" + i, texts.get(i)));
        }
        t.createTemporaryView(
                "tickets",
                t.fromValues(
                        DataTypes.ROW(
                                DataTypes.FIELD("id", DataTypes.STRING()), DataTypes.FIELD("body", DataTypes.STRING())),
                        rows));
        return t;
    }
}
