package io.flinkonnx.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * Throughput of (a) a raw ONNX Runtime loop with reused direct buffers, (b) the batching operator in a
 * MiniCluster job (source -> operator -> sink) and (c) {@code .map(new OnnxInference(...))}, on the same
 * model, batch size and thread budget (one task slot, one ORT intra-op thread), in one JVM; then the
 * added latency of (b) at half its peak rate. Prints the ratios. The stateful case scores a one-step LSTM
 * per key with {@link OnnxInference#stateful} at max batch 64 (records of different keys share a run)
 * against max batch 1 (one record per run), same model, same process.
 *
 * <pre>
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install exec:exec              # MLP, ResNet-18, stateful
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install exec:exec -Dexec.benchArgs=--mlp
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install exec:exec -Dexec.benchArgs=--stateful
 * </pre>
 */
public final class InferenceBenchmark {
    private static final int POOL = 256;
    private static final int STATEFUL_KEYS = 256;

    private InferenceBenchmark() {}

    public static void main(String[] args) throws Exception {
        List<String> flags = Arrays.asList(args);
        boolean all = flags.stream()
                .noneMatch(f -> List.of("--mlp", "--cnn", "--stateful").contains(f));
        boolean mlp = all || flags.contains("--mlp");
        boolean cnn = all || flags.contains("--cnn");
        boolean stateful = all || flags.contains("--stateful");
        Path dir = Files.createTempDirectory("flink-onnx-bench");
        System.out.printf(
                "machine: %d cores, %s %s, Java %s, ONNX Runtime %s; one slot, one intra-op thread%n",
                Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.name"),
                System.getProperty("os.arch"),
                System.getProperty("java.version"),
                OrtEnvironment.getEnvironment().getVersion());
        List<String> rows = new ArrayList<>();
        if (mlp) {
            Path model = BenchmarkModels.writeMlp(dir.resolve("mlp.onnx"));
            float[][] pool = pool(BenchmarkModels.MLP_FEATURES);
            for (int batch : new int[] {64, 128}) {
                double a = rawOrt(model, "x", pool, batch, 3.0);
                double b = batchedJob(model, pool, batch, 2_000_000);
                double c = perRecordJob(model, pool, 400_000);
                rows.add(row("MLP 64-256-256-10", batch, a, b, c));
            }
            double a64 = rawOrt(model, "x", pool, 64, 2.0);
            double peak = batchedJob(model, pool, 64, 2_000_000);
            latency(model, pool, 64, Duration.ofMillis(5), peak / 2, 64 / a64 * 1e3);
        }
        if (cnn) {
            Path model = BenchmarkModels.writeResNet18(dir.resolve("resnet18.onnx"));
            float[][] pool = pool(BenchmarkModels.IMAGE_VALUES, 16);
            int batch = 8;
            double a = rawOrt(model, "image", pool, batch, 6.0);
            double b = batchedJob(model, pool, batch, 200);
            double c = perRecordJob(model, pool, 120);
            rows.add(row("ResNet-18 224x224", batch, a, b, c));
        }
        String statefulRow = null;
        if (stateful) {
            Path model = BenchmarkModels.writeLstm(dir.resolve("lstm.onnx"));
            float[][] pool = pool(BenchmarkModels.LSTM_FEATURES);
            double batched = statefulJob(model, pool, 64, 5_000_000);
            double single = statefulJob(model, pool, 1, 1_000_000);
            statefulRow = String.format(
                    Locale.ROOT,
                    "| LSTM step 16->64, h/c [1,batch,64] | %d | %,.0f | %,.0f | %.1f |",
                    STATEFUL_KEYS,
                    batched,
                    single,
                    batched / single);
        }
        if (statefulRow != null) {
            System.out.println();
            System.out.println("| stateful model | keys | max batch 64 rec/s | max batch 1 rec/s | 64 / 1 |");
            System.out.println("|---|---|---|---|---|");
            System.out.println(statefulRow);
        }
        if (rows.isEmpty()) {
            return;
        }
        System.out.println();
        System.out.println(
                "| model | batch | (a) raw ORT rec/s | (b) batching operator rec/s | (c) map per record rec/s | (b)/(a) | (b)/(c) |");
        System.out.println("|---|---|---|---|---|---|---|");
        rows.forEach(System.out::println);
    }

    private static String row(String model, int batch, double a, double b, double c) {
        return String.format(
                Locale.ROOT, "| %s | %d | %,.0f | %,.0f | %,.0f | %.2f | %.1f |", model, batch, a, b, c, b / a, b / c);
    }

    private static float[][] pool(int width) {
        return pool(width, POOL);
    }

    private static float[][] pool(int width, int count) {
        Random random = new Random(7);
        float[][] pool = new float[count][width];
        for (float[] row : pool) {
            for (int i = 0; i < width; i++) {
                row[i] = (float) random.nextGaussian();
            }
        }
        return pool;
    }

    /** (a): one session, one reused direct buffer, fill + run + read outputs, for {@code seconds} after warm-up. */
    static double rawOrt(Path model, String input, float[][] pool, int batch, double seconds) throws Exception {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        int width = pool[0].length;
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(1);
            options.setInterOpNumThreads(1);
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            try (OrtSession session = env.createSession(model.toString(), options)) {
                long[] shape = shapeOf(model, batch, width);
                FloatBuffer buffer = ByteBuffer.allocateDirect(batch * width * 4)
                        .order(ByteOrder.nativeOrder())
                        .asFloatBuffer();
                float[] out = null;
                long records = 0;
                long start = 0;
                long warmUpEnd = System.nanoTime() + (long) (Math.min(1.0, seconds / 3) * 1e9);
                int next = 0;
                while (true) {
                    buffer.clear();
                    for (int r = 0; r < batch; r++) {
                        buffer.put(pool[next++ % pool.length]);
                    }
                    buffer.flip();
                    try (OnnxTensor tensor = OnnxTensor.createTensor(env, buffer, shape);
                            OrtSession.Result result = session.run(Map.of(input, tensor))) {
                        FloatBuffer y = ((OnnxTensor) result.get(0)).getFloatBuffer();
                        if (out == null || out.length != y.remaining()) {
                            out = new float[y.remaining()];
                        }
                        y.get(out);
                    }
                    long now = System.nanoTime();
                    if (start == 0) {
                        if (now >= warmUpEnd) {
                            start = now;
                        }
                        continue;
                    }
                    records += batch;
                    if (now - start >= seconds * 1e9) {
                        double rate = records / ((now - start) / 1e9);
                        System.out.printf(Locale.ROOT, "  (a) raw ORT, batch %d: %,.0f rec/s%n", batch, rate);
                        return rate;
                    }
                }
            }
        }
    }

    private static long[] shapeOf(Path model, int batch, int width) {
        return width == BenchmarkModels.IMAGE_VALUES ? new long[] {batch, 3, 224, 224} : new long[] {batch, width};
    }

    /** Records the time of the 10%-th and the last record that reach the sink (parallelism 1). */
    static final class Meter<T> implements MapFunction<T, T> {
        static volatile long from;
        static volatile long to;
        static volatile long seen;
        private final long skip;

        Meter(long skip) {
            this.skip = skip;
        }

        static void reset() {
            from = 0;
            to = 0;
            seen = 0;
        }

        @Override
        public T map(T value) {
            long n = ++seen;
            if (n == skip) {
                from = System.nanoTime();
            }
            to = System.nanoTime();
            return value;
        }

        static double rate(long skip) {
            return (seen - skip) / ((to - from) / 1e9);
        }
    }

    private static StreamExecutionEnvironment environment() {
        Configuration conf = new Configuration();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, conf);
        env.getConfig().enableObjectReuse(); // chained operators hand records over without copying them
        return env;
    }

    private static DataStream<float[]> source(StreamExecutionEnvironment env, float[][] pool, long records) {
        return env.fromSequence(0, records - 1).map(new FromPool(pool));
    }

    static final class FromPool implements MapFunction<Long, float[]> {
        private final float[][] pool;

        FromPool(float[][] pool) {
            this.pool = pool;
        }

        @Override
        public float[] map(Long id) {
            return pool[(int) (id % pool.length)];
        }
    }

    /** (b): source -> batching operator -> sink, one slot. */
    static double batchedJob(Path model, float[][] pool, int batch, long records) throws Exception {
        StreamExecutionEnvironment env = environment();
        long skip = records / 10;
        Meter.reset();
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(batch)
                .maxBatchDelay(Duration.ofMillis(5))
                .build();
        OnnxInference.batched(source(env, pool, records), model.toString(), policy)
                .map(new Meter<>(skip))
                .sinkTo(new DiscardingSink<>());
        env.execute("batched");
        double rate = Meter.rate(skip);
        System.out.printf(Locale.ROOT, "  (b) batching operator, batch %d: %,.0f rec/s%n", batch, rate);
        return rate;
    }

    /** (c): source -> map(new OnnxInference(...)) -> sink, one slot. */
    static double perRecordJob(Path model, float[][] pool, long records) throws Exception {
        StreamExecutionEnvironment env = environment();
        long skip = records / 10;
        Meter.reset();
        source(env, pool, records)
                .map(new OnnxInference(model.toString()))
                .map(new Meter<>(skip))
                .sinkTo(new DiscardingSink<>());
        env.execute("per record");
        double rate = Meter.rate(skip);
        System.out.printf(Locale.ROOT, "  (c) map per record: %,.0f rec/s%n", rate);
        return rate;
    }

    /** A record of the stateful case: its key, drawn at random among {@link #STATEFUL_KEYS}, and its features. */
    static final class KeyedFromPool implements MapFunction<Long, Tuple2<Integer, float[]>> {
        private final float[][] pool;

        KeyedFromPool(float[][] pool) {
            this.pool = pool;
        }

        @Override
        public Tuple2<Integer, float[]> map(Long id) {
            long mixed = id * 0x9E3779B97F4A7C15L;
            int key = (int) ((mixed >>> 40) % STATEFUL_KEYS);
            return Tuple2.of(key, pool[(int) (id % pool.length)]);
        }
    }

    /**
     * The stateful case: source -> keyBy -> {@code OnnxInference.stateful} (h/c per key in the heap state
     * backend) -> sink, one slot, keys interleaved at random, at max batch {@code batch}.
     */
    static double statefulJob(Path model, float[][] pool, int batch, long records) throws Exception {
        StreamExecutionEnvironment env = environment();
        long skip = records / 10;
        Meter.reset();
        TypeInformation<Tuple2<Integer, float[]>> type =
                Types.TUPLE(Types.INT, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
        OnnxInferenceSpec<Tuple2<Integer, float[]>, float[]> spec = OnnxInference.<Tuple2<Integer, float[]>>builder(
                        model.toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> out.floats("y"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        RecurrentState<Tuple2<Integer, float[]>> state = RecurrentState.<Tuple2<Integer, float[]>>builder()
                .state("h", "hn")
                .state("c", "cn")
                .build();
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(batch)
                .maxBatchDelay(Duration.ofMillis(5))
                .build();
        DataStream<Tuple2<Integer, float[]>> keyed =
                env.fromSequence(0, records - 1).map(new KeyedFromPool(pool)).returns(type);
        OnnxInference.stateful(keyed.keyBy(r -> r.f0, Types.INT), spec, policy, state)
                .map(new Meter<>(skip))
                .sinkTo(new DiscardingSink<>());
        long start = System.nanoTime();
        env.execute("stateful");
        double rate = Meter.rate(skip);
        System.out.printf(
                Locale.ROOT,
                "  stateful LSTM, %d keys, max batch %d: %,.0f rec/s (%d records, job %.1f s)%n",
                STATEFUL_KEYS,
                batch,
                rate,
                records,
                (System.nanoTime() - start) / 1e9);
        return rate;
    }

    /** Paces records at {@code ratePerSecond} and stamps them with their emission time. */
    static final class Paced implements MapFunction<Long, Tuple2<Long, float[]>> {
        private final float[][] pool;
        private final long intervalNanos;
        private transient long start;

        Paced(float[][] pool, double ratePerSecond) {
            this.pool = pool;
            this.intervalNanos = (long) (1e9 / ratePerSecond);
        }

        @Override
        public Tuple2<Long, float[]> map(Long id) {
            if (start == 0) {
                start = System.nanoTime();
            }
            long due = start + id * intervalNanos;
            long now;
            while ((now = System.nanoTime()) < due) {
                if (due - now > 200_000) {
                    LockSupport.parkNanos(due - now - 100_000);
                }
            }
            return Tuple2.of(now, pool[(int) (id % pool.length)]);
        }
    }

    /** Latencies (emission to sink) of the records after the first 10%. */
    static final class Latencies implements MapFunction<Long, Long> {
        static long[] values;
        static int count;
        private final long skip;
        private long seen;

        Latencies(long skip) {
            this.skip = skip;
        }

        @Override
        public Long map(Long emitted) {
            long latency = System.nanoTime() - emitted;
            if (++seen > skip && count < values.length) {
                values[count++] = latency;
            }
            return latency;
        }
    }

    /** Added latency of (b) at {@code rate}: emission to sink, p50 and p99, against delay + one batch's compute. */
    static void latency(Path model, float[][] pool, int batch, Duration delay, double rate, double batchMillis)
            throws Exception {
        long records = (long) Math.max(20_000, rate * 5);
        StreamExecutionEnvironment env = environment();
        TypeInformation<Tuple2<Long, float[]>> type =
                Types.TUPLE(Types.LONG, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
        OnnxInferenceSpec<Tuple2<Long, float[]>, Long> spec = OnnxInference.<Tuple2<Long, float[]>>builder(
                        model.toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> r.f0, Types.LONG)
                .build();
        Latencies.values = new long[(int) records];
        Latencies.count = 0;
        DataStream<Tuple2<Long, float[]>> paced =
                env.fromSequence(0, records - 1).map(new Paced(pool, rate)).returns(type);
        OnnxInference.batched(
                        paced,
                        spec,
                        BatchPolicy.builder()
                                .maxBatchSize(batch)
                                .maxBatchDelay(delay)
                                .build())
                .map(new Latencies(records / 10))
                .sinkTo(new DiscardingSink<>());
        env.execute("latency");
        long[] v = Arrays.copyOf(Latencies.values, Latencies.count);
        Arrays.sort(v);
        double p50 = v[v.length / 2] / 1e6;
        double p99 = v[(int) (v.length * 0.99)] / 1e6;
        double bound = delay.toMillis() + batchMillis;
        System.out.printf(
                Locale.ROOT,
                "  latency at %,.0f rec/s (half of peak), batch %d, max delay %d ms: p50 %.2f ms,"
                        + " p99 %.2f ms; bound (delay + one batch %.2f ms) %.2f ms: %s%n",
                rate,
                batch,
                delay.toMillis(),
                p50,
                p99,
                batchMillis,
                bound,
                p99 <= bound ? "met" : "NOT met");
    }
}
