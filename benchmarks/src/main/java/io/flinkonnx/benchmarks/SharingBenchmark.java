package io.flinkonnx.benchmarks;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionSharing;
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
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * Memory of one TaskManager with 4 slots scoring ResNet-18: a session per slot (the default) against one
 * session per TaskManager ({@code SessionSharing.PER_TASK_MANAGER}). Each way runs in a JVM of its own (a
 * MiniCluster of one TaskManager with 4 slots, the job at parallelism 4), and reports its peak resident
 * memory (VmHWM). Prints one {@code SHARING {json}} line; {@code InferenceBenchmark} reports the difference as
 * {@code per_tm_sharing_rss_saving_mb}.
 *
 * <pre>
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install && ./mvnw -q -B -pl benchmarks exec:exec -Dexec.mainClass=io.flinkonnx.benchmarks.SharingBenchmark
 * </pre>
 */
public final class SharingBenchmark {
    private static final int SLOTS = 4;
    private static final int IMAGES = 64;

    private SharingBenchmark() {}

    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("--child")) {
            child(Path.of(args[1]), SessionSharing.valueOf(args[2]));
            return;
        }
        double[] mb = measure();
        System.out.printf(
                Locale.ROOT,
                "SHARING {\"per_slot_peak_rss_mb\": %.0f, \"per_tm_peak_rss_mb\": %.0f, \"per_tm_sharing_rss_saving_mb\":"
                        + " %.0f}%n",
                mb[0],
                mb[1],
                mb[0] - mb[1]);
    }

    /** {peak RSS with a session per slot, peak RSS with one per TaskManager}, in MB. */
    static double[] measure() throws Exception {
        Path dir = Files.createTempDirectory("flink-onnx-sharing-");
        Path model = BenchmarkModels.writeResNet18(dir.resolve("resnet18.onnx"));
        double perSlot = runChild(model, SessionSharing.PER_SLOT);
        double perTaskManager = runChild(model, SessionSharing.PER_TASK_MANAGER);
        System.out.printf(
                Locale.ROOT,
                "  ResNet-18 on one TaskManager with %d slots, peak RSS: a session per slot %.0f MB, one per"
                        + " TaskManager %.0f MB (saves %.0f MB)%n",
                SLOTS,
                perSlot,
                perTaskManager,
                perSlot - perTaskManager);
        return new double[] {perSlot, perTaskManager};
    }

    private static double runChild(Path model, SessionSharing sharing) throws Exception {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx1g",
                "--add-opens=java.base/java.util=ALL-UNNAMED",
                "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "-cp",
                System.getProperty("java.class.path"),
                SharingBenchmark.class.getName(),
                "--child",
                model.toString(),
                sharing.name()));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        double peak = -1;
        try (BufferedReader out =
                new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line = out.readLine(); line != null; line = out.readLine()) {
                if (line.startsWith("PEAK_RSS_MB ")) {
                    peak = Double.parseDouble(line.substring("PEAK_RSS_MB ".length()));
                }
            }
        }
        if (p.waitFor() != 0 || peak < 0) {
            throw new IllegalStateException("The " + sharing + " run failed (exit " + p.exitValue() + ")");
        }
        return peak;
    }

    private static void child(Path model, SessionSharing sharing) throws Exception {
        Configuration conf = new Configuration();
        conf.set(TaskManagerOptions.NUM_TASK_SLOTS, SLOTS);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(SLOTS, conf);
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> out.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .sessionSharing(sharing)
                .build();
        OnnxInference.batched(
                        env.fromSequence(0, IMAGES - 1).map(new Image()).rebalance(),
                        spec,
                        BatchPolicy.builder()
                                .maxBatchSize(8)
                                .maxBatchDelay(Duration.ofMillis(5))
                                .build())
                .sinkTo(new DiscardingSink<>());
        env.execute("sharing " + sharing);
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                System.out.println("PEAK_RSS_MB " + (Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0));
            }
        }
    }

    /** A constant image (the values do not change the memory a session takes). */
    static final class Image implements MapFunction<Long, float[]> {
        @Override
        public float[] map(Long id) {
            float[] image = new float[BenchmarkModels.IMAGE_VALUES];
            java.util.Arrays.fill(image, (id % 7) / 7f);
            return image;
        }
    }
}
