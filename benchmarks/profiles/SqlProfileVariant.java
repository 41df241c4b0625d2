package io.flinkonnx.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;

/** Throwaway: the --sql scalar case with extra table options (key=value ...). */
public final class SqlProfileVariant {
    public static void main(String[] a) throws Exception {
        long records = Long.parseLong(a[0]);
        int times = Integer.parseInt(a[1]);
        Path dir = Files.createTempDirectory("sqlprof");
        Path model = BenchmarkModels.writeMlp(dir.resolve("mlp.onnx"));
        float[][] pool = InferenceBenchmark.pool(BenchmarkModels.MLP_FEATURES);
        for (int i = 0; i < times; i++) {
            StreamExecutionEnvironment env = InferenceBenchmark.environment(1);
            StreamTableEnvironment t = StreamTableEnvironment.create(env);
            t.getConfig().set("table.exec.async-scalar.max-concurrent-operations", "128");
            for (int k = 2; k < a.length; k++) {
                String[] kv = a[k].split("=", 2);
                t.getConfig().set(kv[0], kv[1]);
            }
            InferenceBenchmark.Meter.reset();
            t.createTemporaryView("src", InferenceBenchmark.source(env, pool, records));
            t.executeSql("CREATE TEMPORARY VIEW feats AS SELECT CAST(f0 AS ARRAY<FLOAT>) AS x FROM src");
            t.executeSql("CREATE TEMPORARY FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxAsyncScoreFunction'");
            DataStream<Row> out = t.toDataStream(t.sqlQuery("SELECT score('" + model + "', x) AS y FROM feats"));
            out.map(new InferenceBenchmark.Meter<Row>(records / 10)).returns(out.getType()).sinkTo(new DiscardingSink<>());
            env.execute("variant");
            InferenceBenchmark.Throughput r = InferenceBenchmark.Meter.result(1);
            System.out.printf("  variant scalar: %,.1f rec/s, %.2f cores, %,.0f ns CPU per record%n", r.rate, r.cores, r.cores / r.rate * 1e9);
        }
    }
}
