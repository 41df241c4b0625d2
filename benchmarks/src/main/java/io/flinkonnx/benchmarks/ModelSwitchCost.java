package io.flinkonnx.benchmarks;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;

/**
 * What a model switch costs in a multi-model operator ({@code OnnxInference.batchedPerModel}): the time to
 * load one more model (fetch and hash, checks, session creation, warm-up and placement probe: what happens
 * off the task thread when a record names a model not loaded) and the resident memory each loaded model
 * adds, for the benchmark's MLP and ResNet-18. Each copy differs in its doc string, so none shares another's
 * session. Prints one {@code MODELS {json}} line.
 *
 * <pre>
 * ./mvnw -q -B -pl benchmarks -am -DskipTests install && ./mvnw -q -B -pl benchmarks exec:exec -Dexec.mainClass=io.flinkonnx.benchmarks.ModelSwitchCost
 * </pre>
 */
public final class ModelSwitchCost {
    private ModelSwitchCost() {}

    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory("flink-onnx-model-switch-");
        StringBuilder json = new StringBuilder("{");
        measure("mlp", BenchmarkModels.writeMlp(dir.resolve("mlp.onnx")), BenchmarkModels.MLP_FEATURES, 100, dir, json);
        json.append(", ");
        measure(
                "resnet18",
                BenchmarkModels.writeResNet18(dir.resolve("resnet18.onnx")),
                BenchmarkModels.IMAGE_VALUES,
                4,
                dir,
                json);
        System.out.println("MODELS " + json.append("}"));
    }

    private static void measure(String name, Path model, int features, int copies, Path dir, StringBuilder json)
            throws Exception {
        ModelProto proto = ModelProto.parseFrom(Files.readAllBytes(model));
        List<Path> files = new ArrayList<>();
        for (int i = 0; i < copies + 1; i++) {
            Path copy = dir.resolve(name + "-" + i + ".onnx");
            Files.write(
                    copy, proto.toBuilder().setDocString("copy " + i).build().toByteArray());
            files.add(copy);
        }
        BatchPolicy policy = BatchPolicy.builder().maxBatchSize(8).build();
        // warm-up: the first session in a process pays for ORT's environment and class loading
        open(files.get(copies), features, policy).close();
        long rssBefore = residentSetBytes();
        long[] loadMillis = new long[copies];
        List<InferenceRunner<float[], float[]>> loaded = new ArrayList<>();
        for (int i = 0; i < copies; i++) {
            long start = System.nanoTime();
            loaded.add(open(files.get(i), features, policy));
            loadMillis[i] = (System.nanoTime() - start) / 1_000_000;
        }
        long perModel = (residentSetBytes() - rssBefore) / copies;
        loaded.forEach(InferenceRunner::close);
        Arrays.sort(loadMillis);
        long median = loadMillis[copies / 2];
        System.out.printf(
                Locale.ROOT,
                "%-9s %7.1f MB file  load (median of %d) %5d ms  resident memory per loaded model %6.1f MB%n",
                name,
                Files.size(model) / 1e6,
                copies,
                median,
                perModel / 1e6);
        json.append(String.format(
                Locale.ROOT,
                "\"%s_load_ms\": %d, \"%s_rss_per_model_mb\": %.1f, \"%s_file_mb\": %.1f",
                name,
                median,
                name,
                perModel / 1e6,
                name,
                Files.size(model) / 1e6));
    }

    private static InferenceRunner<float[], float[]> open(Path model, int features, BatchPolicy policy)
            throws Exception {
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> out.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        InferenceRunner<float[], float[]> runner = new InferenceRunner<>(spec);
        runner.open("model-switch-benchmark", 0, null, policy.maxBatchSize(), policy);
        runner.infer(new float[features]); // the first real run: what a switch costs before its first result
        return runner;
    }

    private static long residentSetBytes() throws Exception {
        System.gc();
        Path status = Path.of("/proc/self/status");
        if (!Files.exists(status)) {
            return 0;
        }
        for (String line : Files.readAllLines(status)) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
            }
        }
        return 0;
    }
}
