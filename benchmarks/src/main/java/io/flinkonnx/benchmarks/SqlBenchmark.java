package io.flinkonnx.benchmarks;

import java.nio.file.Path;
import java.util.Locale;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;

/**
 * The SQL paths on the benchmark MLP, the same records as the batching operator: one slot, the same source
 * (the pool's float[] rows as a table column, cast to the model's {@code ARRAY<FLOAT>} in every SQL case) and
 * the same metered sink; only the scoring differs: (b) {@code ML_PREDICT} async (rows in flight gathered into
 * runs of up to 64), (c) {@code ML_PREDICT} sync (one run per row), (d) the batched scalar function
 * {@code OnnxAsyncScoreFunction}, and (d') the per-row scalar function {@code OnnxScoreFunction}. Flink's
 * async capacities ({@code table.exec.async-ml-predict.max-concurrent-operations},
 * {@code table.exec.async-scalar.max-concurrent-operations}) are set to {@value #IN_FLIGHT} so that batches of
 * 64 can fill.
 */
final class SqlBenchmark {
    static final int IN_FLIGHT = 128;

    enum Route {
        ASYNC("ML_PREDICT async"),
        SYNC("ML_PREDICT sync"),
        SCALAR("scalar OnnxAsyncScoreFunction"),
        SCALAR_PER_ROW("scalar OnnxScoreFunction (per row)");

        final String label;

        Route(String label) {
            this.label = label;
        }
    }

    private SqlBenchmark() {}

    /** Records per second after the first 10% through {@code path}, one slot. */
    static InferenceBenchmark.Throughput run(Path model, float[][] pool, long records, Route path, int batch)
            throws Exception {
        StreamExecutionEnvironment env = InferenceBenchmark.environment(1);
        StreamTableEnvironment t = StreamTableEnvironment.create(env);
        t.getConfig().set("table.exec.async-ml-predict.max-concurrent-operations", Integer.toString(IN_FLIGHT));
        t.getConfig().set("table.exec.async-scalar.max-concurrent-operations", Integer.toString(IN_FLIGHT));
        long skip = records / 10;
        InferenceBenchmark.Meter.reset();
        t.createTemporaryView("src", InferenceBenchmark.source(env, pool, records));
        t.executeSql("CREATE TEMPORARY VIEW feats AS SELECT CAST(f0 AS ARRAY<FLOAT>) AS x FROM src");
        String uri = model.toString();
        String query;
        switch (path) {
            case ASYNC:
            case SYNC:
                t.executeSql("CREATE TEMPORARY MODEL mlp INPUT (x ARRAY<FLOAT>) OUTPUT (y ARRAY<FLOAT>) WITH"
                        + " ('provider' = 'onnx', 'path' = '" + uri + "', 'batch.max-size' = '" + batch
                        + "', 'batch.max-delay' = '5 ms')");
                query = "SELECT y FROM ML_PREDICT(TABLE feats, MODEL mlp, DESCRIPTOR(x)"
                        + (path == Route.SYNC ? ", MAP['async', 'false'])" : ")");
                break;
            case SCALAR:
                t.executeSql("CREATE TEMPORARY FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxAsyncScoreFunction'");
                query = "SELECT score('" + uri + "', x) AS y FROM feats";
                break;
            default:
                t.executeSql("CREATE TEMPORARY FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction'");
                query = "SELECT score('" + uri + "', x) AS y FROM feats";
        }
        Table scored = t.sqlQuery(query);
        DataStream<Row> out = t.toDataStream(scored);
        out.map(new InferenceBenchmark.Meter<Row>(skip)).returns(out.getType()).sinkTo(new DiscardingSink<>());
        env.execute("sql " + path);
        InferenceBenchmark.Throughput r = InferenceBenchmark.Meter.result(1);
        System.out.printf(
                Locale.ROOT,
                "  SQL %s: %,.1f rec/s, %.2f cores busy, %,.0f ns CPU per record (whole process)%n",
                path.label,
                r.rate,
                r.cores,
                r.cores / r.rate * 1e9);
        return r;
    }
}
