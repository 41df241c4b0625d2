package io.flinkonnx.benchmarks;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.providers.SessionSettings;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * Many models at scale: {@value #MODELS} variants of the benchmark MLP (same shape, other weights, written by
 * code), each record choosing its model with a Zipf({@value #ZIPF_EXPONENT}) skew (seeded: the same records in
 * every job), {@code OnnxInference.batchedPerModel} with {@code maxModels} {@value #MAX_MODELS}, against the
 * single-model batching operator on the same records (all scored by variant 0). Loads are the sessions the
 * process created during the job ({@link SessionStats#created()}), per 1,000 records.
 *
 * <p>The global thread pool case runs the many-model job in two fresh JVMs (ORT's pool is made with its
 * environment, once per process): sessions with {@value #POOL_THREADS} intra-op threads each
 * ({@code threadPool PER_SESSION}) against one pool of {@value #POOL_THREADS} threads that every session
 * shares ({@code -Dflinkonnx.ort.global-pool-threads}, {@code threadPool GLOBAL}).
 */
final class ManyModelsBenchmark {
    static final int MODELS = 100;
    static final double ZIPF_EXPONENT = 1.1;
    static final int MAX_MODELS = 20;
    static final int POOL_THREADS = 2;
    private static final long SEED = 24;
    private static final TypeInformation<Tuple2<Integer, float[]>> RECORD =
            Types.TUPLE(Types.INT, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);

    private ManyModelsBenchmark() {}

    /** What one many-model (or single-model) job measured. */
    static final class Outcome {
        final double rate;
        final long loads;
        final long records;

        Outcome(double rate, long loads, long records) {
            this.rate = rate;
            this.loads = loads;
            this.records = records;
        }

        double loadsPer1k() {
            return loads * 1000.0 / records;
        }
    }

    /** Writes the {@value #MODELS} variants into {@code dir} as {@code mlp-<i>.onnx}. */
    static Path writeVariants(Path dir) throws Exception {
        Files.createDirectories(dir);
        for (int i = 0; i < MODELS; i++) {
            BenchmarkModels.writeMlp(dir.resolve("mlp-" + i + ".onnx"), i);
        }
        return dir;
    }

    /** Record {@code id}: a model drawn from Zipf(1.1) over the variants (rank 1 = variant 0), features. */
    static final class ZipfRecords implements MapFunction<Long, Tuple2<Integer, float[]>> {
        private final float[][] pool;
        private final double[] cdf;

        ZipfRecords(float[][] pool) {
            this.pool = pool;
            this.cdf = new double[MODELS];
            double sum = 0;
            for (int k = 1; k <= MODELS; k++) {
                sum += Math.pow(k, -ZIPF_EXPONENT);
                cdf[k - 1] = sum;
            }
            for (int k = 0; k < MODELS; k++) {
                cdf[k] /= sum;
            }
        }

        @Override
        public Tuple2<Integer, float[]> map(Long id) {
            double u = (mix(SEED ^ id * 0x9E3779B97F4A7C15L) >>> 11) * 0x1.0p-53;
            int lo = 0;
            int hi = MODELS - 1;
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (cdf[mid] < u) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return Tuple2.of(lo, pool[(int) (id % pool.length)]);
        }

        private static long mix(long z) {
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            return z ^ (z >>> 31);
        }
    }

    private static OnnxInferenceSpec<Tuple2<Integer, float[]>, float[]> spec(Path dir, SessionSettings settings) {
        return OnnxInference.<Tuple2<Integer, float[]>>builder(
                        dir.resolve("mlp-0.onnx").toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> out.floats("y"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .sessionSettings(settings)
                .build();
    }

    /** The many-model job (or, with {@code single}, the batching operator on variant 0), one slot. */
    static Outcome job(Path dir, float[][] pool, long records, boolean single, SessionSettings settings)
            throws Exception {
        StreamExecutionEnvironment env = InferenceBenchmark.environment(1);
        long skip = records / 10;
        InferenceBenchmark.Meter.reset();
        DataStream<Tuple2<Integer, float[]>> in =
                env.fromSequence(0, records - 1).map(new ZipfRecords(pool)).returns(RECORD);
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(64)
                .maxBatchDelay(Duration.ofMillis(5))
                .build();
        DataStream<float[]> out;
        if (single) {
            out = OnnxInference.batched(in, spec(dir, settings), policy);
        } else {
            String folder = dir.toString();
            ModelSelector<Tuple2<Integer, float[]>> selector = r -> ModelRef.of(folder + "/mlp-" + r.f0 + ".onnx");
            out = OnnxInference.batchedPerModel(
                    in,
                    selector,
                    spec(dir, settings),
                    policy,
                    ModelCache.builder().maxModels(MAX_MODELS).build());
        }
        out.map(new InferenceBenchmark.Meter<>(skip)).sinkTo(new DiscardingSink<>());
        long createdBefore = SessionStats.created();
        env.execute(single ? "single model" : "many models");
        long loads = SessionStats.created() - createdBefore;
        double rate = InferenceBenchmark.Meter.result(1).rate;
        System.out.printf(
                Locale.ROOT,
                "  %s, %d records: %,.0f rec/s, %d sessions loaded (%.1f per 1,000 records)%n",
                single ? "single-model operator (variant 0)" : "many models (Zipf 1.1 over 100, maxModels 20)",
                records,
                rate,
                loads,
                loads * 1000.0 / records);
        return new Outcome(rate, loads, records);
    }

    /** The many-model job in a fresh JVM, with a global pool of {@link #POOL_THREADS} threads or without. */
    static Outcome inChild(Path dir, long records, boolean globalPool) throws Exception {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx1g",
                "--add-opens=java.base/java.util=ALL-UNNAMED",
                "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "--add-opens=java.base/java.nio=ALL-UNNAMED"));
        for (String p : List.of("log4j2.configurationFile", "flinkonnx.bench.log")) {
            if (System.getProperty(p) != null) {
                command.add("-D" + p + "=" + System.getProperty(p));
            }
        }
        if (globalPool) {
            command.add("-D" + OrtRuntime.GLOBAL_POOL_THREADS_PROPERTY + "=" + POOL_THREADS);
        }
        command.addAll(List.of(
                "-cp",
                System.getProperty("java.class.path"),
                ManyModelsBenchmark.class.getName(),
                dir.toString(),
                Long.toString(records),
                globalPool ? "GLOBAL" : "PER_SESSION"));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        Outcome outcome = null;
        StringBuilder log = new StringBuilder();
        try (BufferedReader out =
                new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line = out.readLine(); line != null; line = out.readLine()) {
                log.append(line).append('\n');
                if (line.startsWith("MANY_MODELS ")) {
                    String[] f = line.split(" ");
                    outcome = new Outcome(Double.parseDouble(f[1]), Long.parseLong(f[2]), Long.parseLong(f[3]));
                }
            }
        }
        if (p.waitFor() != 0 || outcome == null) {
            throw new IllegalStateException(
                    "The many-model run in a JVM of its own failed (exit " + p.exitValue() + "):\n" + log);
        }
        System.out.printf(
                Locale.ROOT,
                "  many models, %s: %,.0f rec/s, %.1f loads per 1,000 records (a JVM of its own)%n",
                globalPool
                        ? "one global ORT pool of " + POOL_THREADS + " threads"
                        : POOL_THREADS + " intra-op threads per session",
                outcome.rate,
                outcome.loadsPer1k());
        return outcome;
    }

    /** The child: {@code dir records GLOBAL|PER_SESSION}; prints {@code MANY_MODELS rate loads records}. */
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        long records = Long.parseLong(args[1]);
        SessionSettings.ThreadPool pool = SessionSettings.ThreadPool.valueOf(args[2]);
        SessionSettings settings = SessionSettings.builder()
                .intraOpThreads(POOL_THREADS)
                .threadPool(pool)
                .build();
        Outcome o = job(dir, InferenceBenchmark.pool(BenchmarkModels.MLP_FEATURES), records, false, settings);
        System.out.println("MANY_MODELS " + o.rate + " " + o.loads + " " + o.records);
        System.exit(0);
    }
}
