package io.flinkonnx.examples;

import java.util.List;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Kafka source -> {@code ML_PREDICT} with the {@code onnx} model provider -> Kafka sink, in Flink SQL, on
 * an in-process broker and a local MiniCluster.
 *
 * <pre>
 * ./mvnw -q -B -pl examples -am -DskipTests install exec:exec -Dexec.mainClass=io.flinkonnx.examples.SqlScoringExample
 * </pre>
 */
public final class SqlScoringExample {
    private SqlScoringExample() {}

    public static void main(String[] args) throws Exception {
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            kafka.createTopics(2, "sql-transactions", "sql-predictions");
            int malformed = KafkaScoringDemo.produce(kafka.bootstrapServers(), "sql-transactions", 10_000);
            run(kafka.bootstrapServers(), "sql-transactions", "sql-predictions", true);
            List<ConsumerRecord<String, String>> out =
                    KafkaScoringDemo.readAll(kafka.bootstrapServers(), "sql-predictions", 10_000 - malformed);
            System.out.println("ML_PREDICT wrote " + out.size() + " predictions (" + malformed
                    + " malformed messages skipped by the JSON format), for example:");
            out.stream().limit(3).forEach(r -> System.out.println("  " + r.value()));
        }
        System.exit(0);
    }

    /** Creates the tables and the model and runs the INSERT (to completion when {@code bounded}). */
    public static void run(String bootstrap, String inputTopic, String outputTopic, boolean bounded) throws Exception {
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        t.getConfig().set("parallelism.default", "2");
        t.executeSql("CREATE TABLE transactions (id STRING, features ARRAY<FLOAT>) WITH ("
                + " 'connector' = 'kafka', 'topic' = '" + inputTopic + "',"
                + " 'properties.bootstrap.servers' = '" + bootstrap + "', 'properties.group.id' = 'sql-example',"
                + " 'scan.startup.mode' = 'earliest-offset'"
                + (bounded ? ", 'scan.bounded.mode' = 'latest-offset'" : "")
                + ", 'format' = 'json', 'json.ignore-parse-errors' = 'true')");
        t.executeSql("CREATE TABLE predictions (id STRING, probabilities ARRAY<FLOAT>) WITH ("
                + " 'connector' = 'kafka', 'topic' = '" + outputTopic + "',"
                + " 'properties.bootstrap.servers' = '" + bootstrap + "', 'format' = 'json')");
        t.executeSql("CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (probabilities ARRAY<FLOAT>)"
                + " WITH ('provider' = 'onnx', 'path' = 'classpath:models/fraud-mlp.onnx', 'batch.max-size' = '64')");
        // SQL has no dead-letter output: rows that do not fit the model are filtered out before it.
        t.executeSql("CREATE TEMPORARY VIEW valid_transactions AS SELECT * FROM transactions"
                + " WHERE features IS NOT NULL AND CARDINALITY(features) = 8");
        t.executeSql("INSERT INTO predictions SELECT id, probabilities FROM ML_PREDICT(TABLE valid_transactions,"
                        + " MODEL fraud, DESCRIPTOR(features))")
                .await();
    }
}
