package io.flinkonnx.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.providers.SessionSettings;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Collectors;
import org.HdrHistogram.Histogram;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * Throughput of (a) a raw ONNX Runtime loop with reused direct buffers, (b) the batching operator in a
 * MiniCluster job (source -> operator -> sink) and (c) {@code .map(new OnnxInference(...))}, on the same
 * model, batch size and thread budget (one task slot, one ORT intra-op thread), in one JVM; the same job at
 * parallelism 2 (two slots of one TaskManager) against parallelism 1; the CPU the one-slot job keeps busy;
 * the added latency of (b) at half its peak rate (HdrHistogram); a Kafka-to-Kafka exactly-once pipeline
 * against a Kafka Streams app and a hand-written loop ({@link PipelineBenchmark}). The stateful case scores
 * a one-step LSTM per key with {@link OnnxInference#stateful} at max batch 64 against max batch 1. The SQL
 * paths ({@link SqlBenchmark}) and many models at scale ({@link ManyModelsBenchmark}) run on the same MLP.
 *
 * <p>The last line printed is {@code BENCH} and one JSON object with the keys of {@link Results#KEYS}: a
 * ratio that this run did not measure (a case left out by the flags) is {@code null}, never a made-up number.
 *
 * <pre>
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install     # first (exec:exec with -am would also run the demo)
 * ./mvnw -q -B -pl benchmarks exec:exec        # everything, about 4 minutes on 2 cores
 * ./mvnw -q -B -pl benchmarks exec:exec -Dexec.benchArgs=--quick
 * ./mvnw -q -B -pl benchmarks exec:exec -Dexec.benchArgs=--mlp   # also --cnn, --slots, --ragged, --sharing, --text,
 *                                                     # --pipeline, --stateful, --sql, --many-models, combinable
 * ./mvnw -q -B -pl benchmarks exec:exec -Dexec.benchArgs=--raw -Donnxruntime.version=1.24.2   # raw ORT loop only
 * </pre>
 */
public final class InferenceBenchmark {
    private static final int POOL = 256;
    private static final int STATEFUL_KEYS = 256;
    private static final int MLP_BATCH = 64;
    private static final int CNN_BATCH = 8;
    private static final Duration MAX_DELAY = Duration.ofMillis(5);
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    /** CPU time per record of the last {@link #rawOrt} loop, on its thread, in ns. */
    private static double rawCpuPerRecord;
    /**
     * Time of each measured batch of the last {@link #rawOrt} loop (fill, run, read: from one batch's end to the
     * next's), in ns: the latency chart's floor. Recorded from the clock reads the loop already makes.
     */
    private static Histogram rawBatchNanos;

    private InferenceBenchmark() {}

    public static void main(String[] args) throws Exception {
        // exec:exec passes -Dexec.benchArgs as one argument: "--mlp --quick" is two flags.
        List<String> flags = Arrays.stream(args)
                .flatMap(a -> Arrays.stream(a.trim().split("\\s+")))
                .filter(a -> !a.isEmpty())
                .collect(Collectors.toList());
        List<String> cases = List.of(
                "--mlp",
                "--raw",
                "--cnn",
                "--slots",
                "--pipeline",
                "--stateful",
                "--ragged",
                "--sharing",
                "--sql",
                "--many-models",
                "--text");
        for (String f : flags) {
            if (!f.isBlank() && !cases.contains(f) && !f.equals("--quick") && !f.equals("--all")) {
                throw new IllegalArgumentException("Unknown flag '" + f + "'; use --quick, --all or " + cases);
            }
        }
        boolean quick = flags.contains("--quick");
        boolean all = flags.stream().noneMatch(cases::contains);
        boolean mlp = all || flags.contains("--mlp");
        boolean cnn = (all && !quick) || flags.contains("--cnn");
        boolean slots = all || flags.contains("--slots");
        boolean pipeline = all || flags.contains("--pipeline");
        boolean stateful = (all && !quick) || flags.contains("--stateful");
        boolean ragged = all || flags.contains("--ragged");
        boolean text = all || flags.contains("--text");
        boolean sharing = (all && !quick) || flags.contains("--sharing");
        boolean sql = all || flags.contains("--sql");
        boolean manyModels = all || flags.contains("--many-models");
        // Only the raw ORT loop on the MLP (no Flink job): CPU per run of one ONNX Runtime build, to compare builds
        // across processes (two ORT versions cannot share one JVM).
        boolean rawOnly = flags.contains("--raw");
        double scale = quick ? 0.25 : 1.0;
        Path dir = Files.createTempDirectory("flink-onnx-bench");
        System.out.printf(
                "machine: %d cores, %s %s, Java %s, ONNX Runtime %s, load average %.2f at start; one ORT intra-op"
                        + " thread per session%s%n",
                Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.name"),
                System.getProperty("os.arch"),
                System.getProperty("java.version"),
                OrtRuntime.env().getVersion(),
                ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(),
                quick ? "; --quick (fewer records, no ResNet-18, no stateful or sharing case)" : "");
        System.out.println("Flink's and Kafka's logs: "
                + Path.of(System.getProperty("flinkonnx.bench.log", "target/benchmark.log"))
                        .toAbsolutePath());
        Results results = new Results();
        double loadAtStart = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        List<String> rows = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        if (rawOnly) {
            Path model = BenchmarkModels.writeMlp(dir.resolve("mlp.onnx"));
            float[][] pool = pool(BenchmarkModels.MLP_FEATURES);
            double least = Double.MAX_VALUE;
            for (int attempt = 0; attempt < 3; attempt++) {
                rawOrt(model, "x", pool, MLP_BATCH, 2.0 * Math.max(0.5, scale));
                least = Math.min(least, rawCpuPerRecord);
            }
            notes.add(String.format(
                    Locale.ROOT,
                    "raw ORT %s, MLP batch %d: %,.0f ns CPU per record (its thread, least of three)",
                    OrtRuntime.env().getVersion(),
                    MLP_BATCH,
                    least));
        }
        if (mlp || slots) {
            Path model = BenchmarkModels.writeMlp(dir.resolve("mlp.onnx"));
            float[][] pool = pool(BenchmarkModels.MLP_FEATURES);
            long records = (long) (2_000_000 * scale);
            // Best of two, raw and operator alternating, so that a burst of load from elsewhere on a shared
            // host hits one attempt, not the ratio.
            double a = 0;
            double aCpu = Double.MAX_VALUE;
            Histogram aBatches = null;
            Throughput b = null;
            for (int attempt = 0; attempt < 2; attempt++) {
                double rate = rawOrt(model, "x", pool, MLP_BATCH, 2.0 * Math.max(0.5, scale));
                if (rate > a) {
                    a = rate;
                    aBatches = rawBatchNanos;
                }
                aCpu = Math.min(aCpu, rawCpuPerRecord);
                Throughput t = batchedJob(model, pool, MLP_BATCH, records, 1);
                if (b == null || t.rate > b.rate) {
                    b = t;
                }
            }
            if (mlp) {
                double c = perRecordJob(model, pool, (long) (400_000 * scale));
                rows.add(row("MLP 64-256-256-10", MLP_BATCH, a, b.rate, c));
                results.throughput("MLP 64-256-256-10", MLP_BATCH, a, b.rate, c);
                results.put("mlp_b64_operator_over_raw", b.rate / a);
                results.put("mlp_b64_operator_over_map", b.rate / c);
                results.put("mlp_cores_used_at_one_slot", b.cores);
                notes.add(String.format(
                        Locale.ROOT, "MLP one-slot job keeps %.2f cores busy (process CPU time / wall time)", b.cores));
                notes.add(String.format(
                        Locale.ROOT,
                        "MLP CPU per record: raw ORT loop %,.0f ns (its thread, least of two); batching operator job"
                                + " %,.0f ns on its task thread, %,.0f ns in the whole process (the fastest run)",
                        aCpu,
                        b.taskCpuPerRecord,
                        b.cores / b.rate * 1e9));
                double batchMillis = MLP_BATCH / a * 1e3;
                double[] lat = latency(model, pool, MLP_BATCH, MAX_DELAY, b.rate / 2, batchMillis, scale);
                results.put("latency_p99_ms", lat[1]);
                results.put("latency_bound_ms", lat[2]);
                results.latency(BenchmarkCharts.LatencySeries.fromNanos(
                        String.format(
                                Locale.ROOT,
                                "(b) MLP batching operator at %,.0f rec/s (half of peak), emission to sink",
                                b.rate / 2),
                        Latencies.HISTOGRAM));
                results.latency(BenchmarkCharts.LatencySeries.fromNanos(
                        "(a) raw ORT loop, one batch of " + MLP_BATCH + " (fill, run, read; no waiting)", aBatches));
                notes.add(String.format(
                        Locale.ROOT,
                        "MLP latency at %,.0f rec/s (half of peak), batch %d, max delay %d ms: p50 %.2f ms, p99 %.2f"
                                + " ms against a bound of %.2f ms (delay + one batch's compute)",
                        b.rate / 2,
                        MLP_BATCH,
                        MAX_DELAY.toMillis(),
                        lat[0],
                        lat[1],
                        lat[2]));
            }
            if (slots) {
                Throughput two = best(
                        batchedJob(model, pool, MLP_BATCH, records * 3 / 2, 2),
                        batchedJob(model, pool, MLP_BATCH, records * 3 / 2, 2));
                results.put("two_slots_over_one_mlp", two.rate / b.rate);
                notes.add(String.format(
                        Locale.ROOT,
                        "MLP parallelism 2 (two slots, one TaskManager): %,.0f rec/s in all, %.2f cores busy;"
                                + " parallelism 1: %,.0f rec/s",
                        two.rate,
                        two.cores,
                        b.rate));
            }
        }
        if (cnn || slots && !quick) {
            Path model = BenchmarkModels.writeResNet18(dir.resolve("resnet18.onnx"));
            float[][] pool = pool(BenchmarkModels.IMAGE_VALUES, 16);
            // Best of two, alternating, as for the MLP: a ResNet-18 batch is long enough for a burst of load
            // from elsewhere to land in one measurement only.
            double a = 0;
            Throughput b = null;
            for (int attempt = 0; attempt < 2; attempt++) {
                a = Math.max(a, rawOrt(model, "image", pool, CNN_BATCH, 4.0));
                Throughput t = batchedJob(model, pool, CNN_BATCH, 160, 1);
                if (b == null || t.rate > b.rate) {
                    b = t;
                }
            }
            if (cnn) {
                double c = perRecordJob(model, pool, 100);
                rows.add(row("ResNet-18 224x224 (random weights)", CNN_BATCH, a, b.rate, c));
                results.throughput("ResNet-18 224x224", CNN_BATCH, a, b.rate, c);
                results.put("cnn_operator_over_raw", b.rate / a);
            }
            if (slots) {
                Throughput two =
                        best(batchedJob(model, pool, CNN_BATCH, 320, 2), batchedJob(model, pool, CNN_BATCH, 320, 2));
                results.put("two_slots_over_one_cnn", two.rate / b.rate);
                notes.add(String.format(
                        Locale.ROOT,
                        "ResNet-18 parallelism 2: %,.1f rec/s in all, %.2f cores busy; parallelism 1: %,.1f rec/s,"
                                + " %.2f cores",
                        two.rate,
                        two.cores,
                        b.rate,
                        b.cores));
            }
        }
        if (pipeline) {
            PipelineBenchmark.Rates p = PipelineBenchmark.run(quick ? 40_000 : 200_000, MLP_BATCH);
            results.put("pipeline_flink_over_kafka_streams", p.flink / p.kafkaStreams);
            results.put("pipeline_flink_over_plain_loop", p.flink / p.plainLoop);
            notes.add(p.summary());
        }
        if (ragged) {
            Path bert = RaggedBenchmark.writeBertLike(dir.resolve("bert-like.onnx"));
            double[] r = RaggedBenchmark.measure(bert, quick ? 500 : 2_000, MLP_BATCH);
            results.put("ragged_bucketed_over_padded", r[0] / r[1]);
            notes.add(String.format(
                    Locale.ROOT,
                    "ragged token sequences (lengths uniform in %d..%d) on a BERT-like encoder (%d layers, hidden %d),"
                            + " batch %d: length buckets %,.1f rec/s, padded to the longest %,.1f rec/s",
                    RaggedBenchmark.MIN_LENGTH,
                    RaggedBenchmark.MAX_LENGTH,
                    RaggedBenchmark.LAYERS,
                    RaggedBenchmark.HIDDEN,
                    MLP_BATCH,
                    r[0],
                    r[1]));
        }
        if (text) {
            double[] t = TextBenchmark.measure(
                    Files.createDirectories(dir.resolve("text")), quick ? 1_000 : 4_000, MLP_BATCH);
            results.put("text_tokenize_share", t[0]);
            results.put("text_bucketed_over_padded", t[1] / t[2]);
            notes.add(TextBenchmark.note(t, MLP_BATCH));
        }
        if (sharing) {
            double[] mb = SharingBenchmark.measure();
            results.put("per_tm_sharing_rss_saving_mb", mb[0] - mb[1]);
            notes.add(String.format(
                    Locale.ROOT,
                    "ResNet-18 on one TaskManager with 4 slots (a JVM of its own each way), peak RSS: a session per"
                            + " slot %.0f MB, one per TaskManager (SessionSharing.PER_TASK_MANAGER) %.0f MB",
                    mb[0],
                    mb[1]));
        }
        if (sql) {
            Path model = BenchmarkModels.writeMlp(dir.resolve("mlp.onnx"));
            float[][] pool = pool(BenchmarkModels.MLP_FEATURES);
            long records = (long) (1_000_000 * scale);
            // Best of two each, alternating, as for the other cases.
            Throughput op = null;
            Throughput async = null;
            Throughput scalar = null;
            for (int attempt = 0; attempt < 2; attempt++) {
                Throughput t = batchedJob(model, pool, MLP_BATCH, records, 1);
                op = op == null || t.rate > op.rate ? t : op;
                t = SqlBenchmark.run(model, pool, records, SqlBenchmark.Route.ASYNC, MLP_BATCH);
                async = async == null || t.rate > async.rate ? t : async;
                t = SqlBenchmark.run(model, pool, records, SqlBenchmark.Route.SCALAR, MLP_BATCH);
                scalar = scalar == null || t.rate > scalar.rate ? t : scalar;
            }
            Throughput sync = best(
                    SqlBenchmark.run(model, pool, records / 5, SqlBenchmark.Route.SYNC, MLP_BATCH),
                    SqlBenchmark.run(model, pool, records / 5, SqlBenchmark.Route.SYNC, MLP_BATCH));
            Throughput perRow =
                    SqlBenchmark.run(model, pool, records / 5, SqlBenchmark.Route.SCALAR_PER_ROW, MLP_BATCH);
            results.put("sql_async_over_operator", async.rate / op.rate);
            results.put("sql_sync_over_operator", sync.rate / op.rate);
            results.put("sql_scalar_over_operator", scalar.rate / op.rate);
            notes.add(String.format(
                    Locale.ROOT,
                    "SQL on the MLP, one slot, batch 64, %d rows in flight: batching operator %,.0f rec/s; ML_PREDICT"
                            + " async %,.0f, sync %,.0f; scalar OnnxAsyncScoreFunction %,.0f, OnnxScoreFunction (one"
                            + " run per row) %,.0f",
                    SqlBenchmark.IN_FLIGHT,
                    op.rate,
                    async.rate,
                    sync.rate,
                    scalar.rate,
                    perRow.rate));
        }
        if (manyModels) {
            Path variants = ManyModelsBenchmark.writeVariants(dir.resolve("variants"));
            float[][] pool = pool(BenchmarkModels.MLP_FEATURES);
            // Loads bound the many-model job (~430 per 1,000 records, a few ms each): 5,000 of its records take
            // 10-50 s on 2 cores. The single-model job scores the same record stream, 50x as long, for a window the
            // JIT and start-up do not dominate.
            long records = (long) (5_000 * Math.max(0.5, scale));
            SessionSettings oneThread = SessionSettings.defaults();
            ManyModelsBenchmark.Outcome many = null;
            ManyModelsBenchmark.Outcome single = null;
            for (int attempt = 0; attempt < 2; attempt++) {
                ManyModelsBenchmark.Outcome o = ManyModelsBenchmark.job(variants, pool, records * 50, true, oneThread);
                single = single == null || o.rate > single.rate ? o : single;
                o = ManyModelsBenchmark.job(variants, pool, records, false, oneThread);
                many = many == null || o.rate > many.rate ? o : many;
            }
            results.put("many_models_zipf_over_single", many.rate / single.rate);
            results.put("many_models_loads_per_1k", many.loadsPer1k());
            ManyModelsBenchmark.Outcome perSession = null;
            ManyModelsBenchmark.Outcome global = null;
            for (int attempt = 0; attempt < 2; attempt++) {
                ManyModelsBenchmark.Outcome o = ManyModelsBenchmark.inChild(variants, records, false);
                perSession = perSession == null || o.rate > perSession.rate ? o : perSession;
                o = ManyModelsBenchmark.inChild(variants, records, true);
                global = global == null || o.rate > global.rate ? o : global;
            }
            results.put("global_pool_over_per_session", global.rate / perSession.rate);
            notes.add(String.format(
                    Locale.ROOT,
                    "many models (%d MLP variants, Zipf %.1f, maxModels %d), one slot: %,.0f rec/s, %.1f loads per"
                            + " 1,000 records; single-model operator on the same records %,.0f rec/s; with %d"
                            + " intra-op threads per session %,.0f rec/s, one global pool of %d threads %,.0f rec/s",
                    ManyModelsBenchmark.MODELS,
                    ManyModelsBenchmark.ZIPF_EXPONENT,
                    ManyModelsBenchmark.MAX_MODELS,
                    many.rate,
                    many.loadsPer1k(),
                    single.rate,
                    ManyModelsBenchmark.POOL_THREADS,
                    perSession.rate,
                    ManyModelsBenchmark.POOL_THREADS,
                    global.rate));
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
        if (!rows.isEmpty()) {
            System.out.println();
            System.out.println(
                    "| model | batch | (a) raw ORT rec/s | (b) batching operator rec/s | (c) map per record rec/s | (b)/(a) | (b)/(c) |");
            System.out.println("|---|---|---|---|---|---|---|");
            rows.forEach(System.out::println);
        }
        if (statefulRow != null) {
            System.out.println();
            System.out.println("| stateful model | keys | max batch 64 rec/s | max batch 1 rec/s | 64 / 1 |");
            System.out.println("|---|---|---|---|---|");
            System.out.println(statefulRow);
        }
        System.out.println();
        notes.forEach(n -> System.out.println("- " + n));
        System.out.printf(
                Locale.ROOT,
                "- load average %.2f at the end (other processes on this host share the cores)%n",
                ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        double loadAtEnd = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        results.describe(String.format(
                Locale.ROOT,
                "%s, %s; %d cores, %s %s, Java %s, ONNX Runtime %s; load average %.1f at start, %.1f at end (shared"
                        + " host)",
                LocalDate.now(),
                "InferenceBenchmark " + String.join(" ", flags.isEmpty() ? List.of("--all") : flags),
                Runtime.getRuntime().availableProcessors(),
                System.getProperty("os.name"),
                System.getProperty("os.arch"),
                System.getProperty("java.version"),
                OrtRuntime.env().getVersion(),
                loadAtStart,
                loadAtEnd));
        Path charts = Path.of(System.getProperty("flinkonnx.bench.charts", "target"));
        try {
            BenchmarkCharts.Written written = BenchmarkCharts.write(results, charts);
            System.out.println("- charts and their data: "
                    + written.files().stream()
                            .map(f -> f.toAbsolutePath().toString())
                            .collect(Collectors.joining(", "))
                    + (written.skipped() == null ? "" : "; no PNG: " + written.skipped()));
        } catch (Exception e) {
            System.out.println("- charts not written to " + charts.toAbsolutePath() + ": " + e);
        }
        System.out.println();
        System.out.println(results.table());
        System.out.println("BENCH " + results.json());
        System.out.flush();
        // Kafka's and Flink's non-daemon threads may linger after their clients closed.
        System.exit(0);
    }

    /** The faster of two runs: on a shared host a burst of load elsewhere then spoils one of them only. */
    private static Throughput best(Throughput a, Throughput b) {
        return a.rate >= b.rate ? a : b;
    }

    private static String row(String model, int batch, double a, double b, double c) {
        return String.format(
                Locale.ROOT, "| %s | %d | %,.0f | %,.0f | %,.0f | %.2f | %.1f |", model, batch, a, b, c, b / a, b / c);
    }

    static float[][] pool(int width) {
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
        OrtEnvironment env = OrtRuntime.env();
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
                long cpuStart = 0;
                long warmUpEnd = System.nanoTime() + (long) (Math.min(1.0, seconds / 3) * 1e9);
                Histogram batchNanos = new Histogram(3);
                long previous = 0;
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
                            cpuStart = THREADS.getCurrentThreadCpuTime();
                        }
                        continue;
                    }
                    records += batch;
                    batchNanos.recordValue(now - Math.max(previous, start));
                    previous = now;
                    if (now - start >= seconds * 1e9) {
                        double rate = records / ((now - start) / 1e9);
                        double cpuPerRecord = (THREADS.getCurrentThreadCpuTime() - cpuStart) / (double) records;
                        rawCpuPerRecord = cpuPerRecord;
                        rawBatchNanos = batchNanos;
                        System.out.printf(
                                Locale.ROOT,
                                "  (a) raw ORT, batch %d: %,.0f rec/s, %,.0f ns CPU per record (its thread)%n",
                                batch,
                                rate,
                                cpuPerRecord);
                        return rate;
                    }
                }
            }
        }
    }

    private static long[] shapeOf(Path model, int batch, int width) {
        return width == BenchmarkModels.IMAGE_VALUES ? new long[] {batch, 3, 224, 224} : new long[] {batch, width};
    }

    /** What a metered job did: records per second in all, and process CPU time over wall time. */
    static final class Throughput {
        final double rate;
        final double cores;
        /** CPU time of the task threads (the chain: source, operator, sink) per record, in ns. */
        final double taskCpuPerRecord;

        Throughput(double rate, double cores, double taskCpuPerRecord) {
            this.rate = rate;
            this.cores = cores;
            this.taskCpuPerRecord = taskCpuPerRecord;
        }
    }

    /**
     * Per subtask: the time of its {@code skip}-th record (the end of warm-up) and of its close (right after
     * its last record: end of input flushes what little is buffered), and the process's and the task
     * thread's CPU time at both. No clock is read for the records in between, so the harness adds next to
     * nothing per record. Every subtask's window is kept so
     * the total is the records of all subtasks over the union of their windows (never a sum of rates over
     * windows that need not overlap).
     */
    static final class Meter<T> extends RichMapFunction<T, T> {
        static final List<long[]> WINDOWS = new CopyOnWriteArrayList<>();
        private final long skip;
        private long seen;
        private long from;
        private long cpuFrom;
        private long threadCpuFrom;

        Meter(long skip) {
            this.skip = skip;
        }

        static void reset() {
            WINDOWS.clear();
        }

        @Override
        public T map(T value) {
            if (++seen == skip) {
                from = System.nanoTime();
                cpuFrom = processCpuNanos();
                threadCpuFrom = THREADS.getCurrentThreadCpuTime(); // the task thread: the chain is one thread
            }
            return value;
        }

        @Override
        public void close() {
            if (seen > skip) {
                long to = System.nanoTime();
                long threadCpu = THREADS.getCurrentThreadCpuTime() - threadCpuFrom;
                WINDOWS.add(
                        new long[] {from, to, seen - skip, cpuFrom, processCpuNanos(), System.nanoTime(), threadCpu});
            }
        }

        static Throughput result(int parallelism) {
            if (WINDOWS.size() != parallelism) {
                throw new IllegalStateException("Expected " + parallelism + " metered subtasks, got " + WINDOWS.size());
            }
            long from = Long.MAX_VALUE;
            long to = Long.MIN_VALUE;
            long closed = Long.MIN_VALUE;
            long cpuFrom = Long.MAX_VALUE;
            long cpuTo = Long.MIN_VALUE;
            long records = 0;
            long taskCpu = 0;
            for (long[] w : WINDOWS) {
                taskCpu += w[6];
                from = Math.min(from, w[0]);
                to = Math.max(to, w[1]);
                records += w[2];
                cpuFrom = Math.min(cpuFrom, w[3]);
                cpuTo = Math.max(cpuTo, w[4]);
                closed = Math.max(closed, w[5]);
            }
            if (parallelism > 1) {
                StringBuilder sb = new StringBuilder("    subtasks:");
                for (long[] w : WINDOWS) {
                    sb.append(String.format(
                            Locale.ROOT,
                            " [%.2f s to %.2f s: %,.0f rec/s]",
                            (w[0] - from) / 1e9,
                            (w[1] - from) / 1e9,
                            w[2] / ((w[1] - w[0]) / 1e9)));
                }
                System.out.println(sb);
            }
            return new Throughput(
                    records / ((to - from) / 1e9),
                    (cpuTo - cpuFrom) / (double) (closed - from),
                    taskCpu / (double) records);
        }
    }

    static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    /** A MiniCluster of one TaskManager with two slots, the job at {@code parallelism}. */
    static StreamExecutionEnvironment environment(int parallelism) {
        Configuration conf = new Configuration();
        conf.set(TaskManagerOptions.NUM_TASK_SLOTS, 2);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);
        env.getConfig().enableObjectReuse(); // chained operators hand records over without copying them
        return env;
    }

    static DataStream<float[]> source(StreamExecutionEnvironment env, float[][] pool, long records) {
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

    /** (b): source -> batching operator -> sink, at {@code parallelism} (one slot per subtask). */
    static Throughput batchedJob(Path model, float[][] pool, int batch, long records, int parallelism)
            throws Exception {
        StreamExecutionEnvironment env = environment(parallelism);
        long skip = records / parallelism / 10;
        Meter.reset();
        // FromPool hands out its pool's arrays and never writes to them: no object-reuse copy is needed.
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(batch)
                .maxBatchDelay(MAX_DELAY)
                .immutableRecords(true)
                .build();
        OnnxInference.batched(source(env, pool, records), model.toString(), policy)
                .map(new Meter<>(skip))
                .sinkTo(new DiscardingSink<>());
        env.execute("batched");
        Throughput t = Meter.result(parallelism);
        System.out.printf(
                Locale.ROOT,
                "  (b) batching operator, batch %d, parallelism %d: %,.1f rec/s, %.2f cores busy, %,.0f ns CPU per"
                        + " record (whole process), %,.0f ns (task threads)%n",
                batch,
                parallelism,
                t.rate,
                t.cores,
                t.cores / t.rate * 1e9,
                t.taskCpuPerRecord);
        return t;
    }

    /** (c): source -> map(new OnnxInference(...)) -> sink, one slot. */
    static double perRecordJob(Path model, float[][] pool, long records) throws Exception {
        StreamExecutionEnvironment env = environment(1);
        long skip = records / 10;
        Meter.reset();
        source(env, pool, records)
                .map(new OnnxInference(model.toString()))
                .map(new Meter<>(skip))
                .sinkTo(new DiscardingSink<>());
        env.execute("per record");
        double rate = Meter.result(1).rate;
        System.out.printf(Locale.ROOT, "  (c) map per record: %,.1f rec/s%n", rate);
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
        StreamExecutionEnvironment env = environment(1);
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
        double rate = Meter.result(1).rate;
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

    /** Latencies (emission to sink) of the records after the first 10%, in an HdrHistogram (nanoseconds). */
    static final class Latencies implements MapFunction<Long, Long> {
        static final Histogram HISTOGRAM = new Histogram(3);
        private final long skip;
        private long seen;

        Latencies(long skip) {
            this.skip = skip;
        }

        @Override
        public Long map(Long emitted) {
            long latency = System.nanoTime() - emitted;
            if (++seen > skip) {
                HISTOGRAM.recordValue(latency);
            }
            return latency;
        }
    }

    /**
     * Added latency of (b) at {@code rate}: emission to sink. Returns p50 and p99 in ms and the bound they are
     * held to: max delay + one batch's compute.
     */
    static double[] latency(
            Path model, float[][] pool, int batch, Duration delay, double rate, double batchMillis, double scale)
            throws Exception {
        long records = (long) Math.max(20_000, rate * 5 * scale);
        StreamExecutionEnvironment env = environment(1);
        TypeInformation<Tuple2<Long, float[]>> type =
                Types.TUPLE(Types.LONG, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
        OnnxInferenceSpec<Tuple2<Long, float[]>, Long> spec = OnnxInference.<Tuple2<Long, float[]>>builder(
                        model.toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> r.f0, Types.LONG)
                .build();
        Latencies.HISTOGRAM.reset();
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
        double p50 = Latencies.HISTOGRAM.getValueAtPercentile(50) / 1e6;
        double p99 = Latencies.HISTOGRAM.getValueAtPercentile(99) / 1e6;
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
        return new double[] {p50, p99, bound};
    }
}
