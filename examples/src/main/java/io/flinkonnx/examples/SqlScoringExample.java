package io.flinkonnx.examples;

import java.util.List;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Kafka source (JSON) -> {@code ML_PREDICT} with the {@code onnx} model provider -> two Kafka sinks: the
 * predictions, and the rows the model could not score with the reason (the SQL dead-letter queue), in
 * Flink SQL, on an in-process broker and a local MiniCluster.
 *
 * <pre>
 * ./mvnw -q -B -pl examples -am -DskipTests install exec:exec -Dexec.mainClass=io.flinkonnx.examples.SqlScoringExample
 * </pre>
 */
public final class SqlScoringExample {
    private SqlScoringExample() {}

    public static void main(String[] args) throws Exception {
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            kafka.createTopics(2, "sql-transactions", "sql-predictions", "sql-dead-letters");
            int malformed = KafkaScoringDemo.produce(kafka.bootstrapServers(), "sql-transactions", 10_000);
            run(kafka.bootstrapServers(), "sql-transactions", "sql-predictions", "sql-dead-letters", true);
            List<ConsumerRecord<String, String>> out =
                    KafkaScoringDemo.readAll(kafka.bootstrapServers(), "sql-predictions", 10_000 - malformed);
            System.out.println("ML_PREDICT wrote " + out.size() + " predictions (" + malformed
                    + " malformed messages skipped by the JSON format), for example:");
            out.stream().limit(3).forEach(r -> System.out.println("  " + r.value()));
        }
        System.exit(0);
    }

    /** The statements, in order; {@link #run} executes them. */
    static List<String> statements(
            String bootstrap, String inputTopic, String outputTopic, String deadLetterTopic, boolean bounded) {
        return List.of(
                "CREATE TABLE transactions (id STRING, features ARRAY<FLOAT>) WITH ("
                        + " 'connector' = 'kafka', 'topic' = '" + inputTopic + "',"
                        + " 'properties.bootstrap.servers' = '" + bootstrap
                        + "', 'properties.group.id' = 'sql-example',"
                        + " 'scan.startup.mode' = 'earliest-offset'"
                        + (bounded ? ", 'scan.bounded.mode' = 'latest-offset'" : "")
                        + ", 'format' = 'json', 'json.ignore-parse-errors' = 'true')",
                "CREATE TABLE predictions (id STRING, probabilities ARRAY<FLOAT>, model_version STRING) WITH ("
                        + " 'connector' = 'kafka', 'topic' = '" + outputTopic + "',"
                        + " 'properties.bootstrap.servers' = '" + bootstrap + "', 'format' = 'json')",
                "CREATE TABLE dead_letters (id STRING, reason STRING) WITH ("
                        + " 'connector' = 'kafka', 'topic' = '" + deadLetterTopic + "',"
                        + " 'properties.bootstrap.servers' = '" + bootstrap + "', 'format' = 'json')",
                // A row the model cannot score (a NULL element, a wrong length) is emitted with NULL outputs and
                // the reason in onnx_error: the statement set below splits predictions from dead letters.
                "CREATE MODEL fraud INPUT (features ARRAY<FLOAT>)"
                        + " OUTPUT (probabilities ARRAY<FLOAT>, onnx_error STRING, model_version STRING)"
                        + " WITH ('provider' = 'onnx', 'path' = 'classpath:models/fraud-mlp.onnx', 'batch.max-size' = '64',"
                        + " 'on-error' = 'null', 'error-column' = 'onnx_error',"
                        + " 'model-version' = 'fraud-mlp-1', 'model-version-column' = 'model_version')",
                "CREATE TEMPORARY VIEW scored AS SELECT * FROM ML_PREDICT(TABLE transactions, MODEL fraud,"
                        + " DESCRIPTOR(features))");
    }

    /** Creates the tables and the model and runs both INSERTs as one job (to completion when {@code bounded}). */
    public static void run(
            String bootstrap, String inputTopic, String outputTopic, String deadLetterTopic, boolean bounded)
            throws Exception {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        for (String statement : statements(bootstrap, inputTopic, outputTopic, deadLetterTopic, bounded)) {
            t.executeSql(statement);
        }
        StatementSet inserts = t.createStatementSet();
        inserts.addInsertSql("INSERT INTO predictions SELECT id, probabilities, model_version FROM scored"
                + " WHERE onnx_error IS NULL");
        inserts.addInsertSql("INSERT INTO dead_letters SELECT id, onnx_error FROM scored WHERE onnx_error IS NOT NULL");
        inserts.execute().await();
    }
}
