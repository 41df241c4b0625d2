package io.flinkonnx.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;

/** Throwaway: one SQL route (or the operator) per JVM, so one JFR recording holds one path. */
public final class SqlProfileDriver {
    public static void main(String[] a) throws Exception {
        String route = a[0];
        long records = Long.parseLong(a[1]);
        int times = a.length > 2 ? Integer.parseInt(a[2]) : 1;
        Path dir = Files.createTempDirectory("sqlprof");
        Path model = BenchmarkModels.writeMlp(dir.resolve("mlp.onnx"));
        float[][] pool = InferenceBenchmark.pool(BenchmarkModels.MLP_FEATURES);
        for (int i = 0; i < times; i++) {
            if (route.equals("OPERATOR")) {
                InferenceBenchmark.Throughput t = InferenceBenchmark.batchedJob(model, pool, 64, records, 1);
                System.out.printf("  operator: %,.1f rec/s, %.2f cores, %,.0f ns CPU per record%n", t.rate, t.cores, t.cores / t.rate * 1e9);
            } else {
                SqlBenchmark.run(model, pool, records, SqlBenchmark.Route.valueOf(route), 64);
            }
        }
    }
}
