package io.flinkonnx.examples;

import io.flinkonnx.flink.OnnxInference;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.CloseableIterator;

/**
 * The quick start: synthetic feature records scored by the bundled MLP with
 * {@code features.map(new OnnxInference("classpath:models/demo-mlp.onnx"))} on a local Flink MiniCluster,
 * then a few predictions and the throughput are printed.
 *
 * <pre>
 * ./mvnw -q -pl examples -am -DskipTests install exec:exec -Dexec.demoArgs=--records=20000
 * </pre>
 */
public final class QuickStartJob {
    /** The bundled model: 32 features in, 4 scores out (see DemoModel in the tests, which made it). */
    public static final String MODEL = "classpath:models/demo-mlp.onnx";

    public static final int FEATURES = 32;

    private QuickStartJob() {}

    public static void main(String[] args) throws Exception {
        int records = 10_000;
        int parallelism = 2;
        for (String arg : args) {
            if (arg.startsWith("--records=")) {
                records = Integer.parseInt(arg.substring("--records=".length()));
            } else if (arg.startsWith("--parallelism=")) {
                parallelism = Integer.parseInt(arg.substring("--parallelism=".length()));
            } else if (!arg.isBlank()) {
                throw new IllegalArgumentException("Unknown argument '" + arg + "'; use --records=N --parallelism=P");
            }
        }
        Configuration conf = new Configuration();
        conf.set(TaskManagerOptions.NUM_TASK_SLOTS, parallelism);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);
        env.setRuntimeMode(RuntimeExecutionMode.STREAMING);

        System.out.printf(
                "flink-onnx quick start: scoring %,d records with %s at parallelism %d%n", records, MODEL, parallelism);
        long start = System.nanoTime();
        List<float[]> predictions = score(env, records);
        double seconds = (System.nanoTime() - start) / 1e9;

        for (int i = 0; i < Math.min(5, predictions.size()); i++) {
            System.out.println("prediction " + i + ": " + format(predictions.get(i)));
        }
        System.out.printf(
                Locale.ROOT,
                "scored %,d records in %.2f s (%.0f records/s, including cluster start-up)%n",
                predictions.size(),
                seconds,
                predictions.size() / seconds);
        if (predictions.size() != records) {
            throw new IllegalStateException("Expected " + records + " predictions, got " + predictions.size());
        }
    }

    /** Builds and runs the job; returns every prediction. */
    public static List<float[]> score(StreamExecutionEnvironment env, int records) throws Exception {
        DataStream<float[]> features =
                env.fromSequence(0, records - 1).map(QuickStartJob::features).rebalance();

        DataStream<float[]> predictions = features.map(new OnnxInference(MODEL));

        List<float[]> out = new ArrayList<>(records);
        try (CloseableIterator<float[]> it = predictions.executeAndCollect("flink-onnx quick start")) {
            it.forEachRemaining(out::add);
        }
        return out;
    }

    /** Deterministic synthetic features of record {@code k}. */
    public static float[] features(long k) {
        float[] x = new float[FEATURES];
        for (int i = 0; i < FEATURES; i++) {
            x[i] = (float) Math.cos(k * 0.37 + i * 1.3);
        }
        return x;
    }

    private static String format(float[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.4f", v[i]));
        }
        return sb.append(']').toString();
    }
}
