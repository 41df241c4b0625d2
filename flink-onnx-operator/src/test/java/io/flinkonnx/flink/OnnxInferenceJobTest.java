package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.model.ModelFormat;
import io.flinkonnx.model.ModelLoadException;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.ProviderUnavailableException;
import io.flinkonnx.providers.SessionSettings;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** {@code stream.map(new OnnxInference(...))} and the typed builder in real jobs on 2 TaskManagers x 2 slots. */
class OnnxInferenceJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    private static List<float[]> inputs(int n, int width) {
        return IntStream.range(0, n)
                .mapToObj(k -> TestModels.features(k, width))
                .collect(Collectors.toList());
    }

    @Test
    void quickStartLineScoresEveryRecordAsTheReferenceDoes() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(32, 64, 4);
        String model = mlp.writeTo(dir.resolve("model.onnx")).toString();
        List<float[]> records = inputs(200, 32);

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(4);
        DataStream<float[]> features = env.fromData(records).rebalance();
        DataStream<float[]> predictions = features.map(new OnnxInference(model));

        List<float[]> actual = sortedByFirst(FlinkClusters.collect(predictions));
        List<float[]> expected =
                sortedByFirst(records.stream().map(mlp::reference).collect(Collectors.toList()));
        assertThat(actual).hasSize(200);
        for (int i = 0; i < expected.size(); i++) {
            assertThat(actual.get(i)).containsExactly(expected.get(i), within(1e-5f));
        }
        assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }

    @Test
    void imageShapedModelTakesFlatRecords() throws Exception {
        String model = TestModels.writeChannelMean(dir.resolve("image.onnx")).toString();
        List<float[]> images = inputs(20, 48);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        List<float[]> actual = sortedByFirst(
                FlinkClusters.collect(env.fromData(images).rebalance().map(new OnnxInference(model))));
        List<float[]> expected = sortedByFirst(
                images.stream().map(TestModels::channelMeanReference).collect(Collectors.toList()));
        for (int i = 0; i < expected.size(); i++) {
            assertThat(actual.get(i)).containsExactly(expected.get(i), within(1e-6f));
        }
    }

    /** A POJO record: Flink serializes it between tasks. */
    public static class Payment {
        public long id;
        public String channel;

        public Payment() {}

        Payment(long id, String channel) {
            this.id = id;
            this.channel = channel;
        }
    }

    @Test
    void typedBuilderMapsPojosThroughAStringModel() throws Exception {
        String model =
                TestModels.writeStringLabelEncoder(dir.resolve("labels.onnx")).toString();
        List<Payment> payments = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            payments.add(new Payment(i, i % 5 == 4 ? "barter" : TestModels.LABELS[i % 4]));
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(4);
        DataStream<String> coded = env.fromData(payments)
                .rebalance()
                .map(OnnxInference.<Payment>builder(model)
                        .encoder((p, row) -> row.put("category", new String[] {p.channel}))
                        .decoder((p, out) -> p.id + ":" + out.longs("code")[0], Types.STRING)
                        .buildFunction());
        List<String> expected = payments.stream()
                .map(p -> p.id + ":"
                        + (p.channel.equals("barter")
                                ? -1
                                : Arrays.asList(TestModels.LABELS).indexOf(p.channel)))
                .collect(Collectors.toList());
        assertThat(FlinkClusters.collect(coded)).containsExactlyInAnyOrderElementsOf(expected);
    }

    @Test
    void cudaRequestedOnACpuBuildRunsOnCpu() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(8, 8, 2);
        String model = mlp.writeTo(dir.resolve("m.onnx")).toString();
        List<float[]> records = inputs(10, 8);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        List<float[]> actual = sortedByFirst(FlinkClusters.collect(env.fromData(records)
                .rebalance()
                .map(new OnnxInference(model).withProviders("cuda(device_id=0) > cpu"))));
        List<float[]> expected =
                sortedByFirst(records.stream().map(mlp::reference).collect(Collectors.toList()));
        for (int i = 0; i < expected.size(); i++) {
            assertThat(actual.get(i)).containsExactly(expected.get(i), within(1e-5f));
        }
    }

    @Test
    void strictCudaChainFailsTheJobAtStartWithAClearMessage() throws Exception {
        if (OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
            return; // with CUDA present, strict mode has nothing to refuse
        }
        String model =
                new TestModels.Mlp(8, 8, 2).writeTo(dir.resolve("m.onnx")).toString();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DataStream<float[]> out = env.fromData(inputs(3, 8))
                .map(OnnxInference.<float[]>builder(model)
                        .providers(ProviderChain.parse("cuda > cpu").strict())
                        .encoder((f, row) -> row.put(f))
                        .decoder((f, o) -> o.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                        .buildFunction());
        assertThatThrownBy(() -> FlinkClusters.collect(out)).satisfies(e -> assertThat(
                        ExceptionUtils.findThrowable(e, ProviderUnavailableException.class))
                .get()
                .extracting(Throwable::getMessage)
                .asString()
                .startsWith("Execution provider cuda could not be added (ORT_EP_FAIL: Failed to find CUDA shared"
                        + " provider) and the chain 'cuda > cpu (strict)' is strict."));
        assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }

    @Test
    void opsetTooNewFailsTheJobAtStartNamingFileOpsetAndFix() throws Exception {
        long opset = OrtRuntime.limits().maxOpset("") + 1;
        Path model = TestModels.writeIdentityWithOpset(dir.resolve("future.onnx"), opset);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DataStream<float[]> out = env.fromData(List.of(new float[] {1, 2})).map(new OnnxInference(model.toString()));
        assertThatThrownBy(() -> FlinkClusters.collect(out))
                .satisfies(e -> assertThat(ExceptionUtils.findThrowable(e, ModelLoadException.class))
                        .get()
                        .extracting(Throwable::getMessage)
                        .asString()
                        .contains("Model file " + model.toAbsolutePath() + " uses opset " + opset
                                + " of domain 'ai.onnx', but ONNX" + " Runtime " + OrtRuntime.version())
                        .contains("Re-export it with opset_version="));
    }

    @Test
    void wrongSha256FailsTheJobAtStart() throws Exception {
        Path model = new TestModels.Mlp(4, 4, 2).writeTo(dir.resolve("m.onnx"));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DataStream<float[]> out = env.fromData(inputs(2, 4))
                .map(new OnnxInference(ModelSource.of(model.toString()).withSha256("ab".repeat(32))));
        assertThatThrownBy(() -> FlinkClusters.collect(out))
                .satisfies(e -> assertThat(ExceptionUtils.findThrowable(e, ModelLoadException.class))
                        .get()
                        .extracting(Throwable::getMessage)
                        .asString()
                        .startsWith("sha256 mismatch for model " + model + ": expected " + "ab".repeat(32)));
    }

    @Test
    void ortFormatModelSavedByTheSessionSettingsLoadsAndScoresTheSame() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(16, 16, 3);
        Path onnx = mlp.writeTo(dir.resolve("m.onnx"));
        Path ort = dir.resolve("m.ort");
        // Save the optimized model as .ort (level BASIC keeps it portable across CPUs).
        SessionSettings save = SessionSettings.builder()
                .optimizationLevel(SessionSettings.OptimizationLevel.BASIC)
                .saveOptimizedModel(ort.toString(), SessionSettings.ModelFileFormat.ORT)
                .build();
        try (InferenceRunner<float[], float[]> r = Runners.open(
                new OnnxInference(onnx.toString()).withSessionSettings(save).spec())) {
            assertThat(r.signature().format()).isEqualTo(ModelFormat.ONNX);
        }
        assertThat(Files.readAllBytes(ort)).hasSizeGreaterThan(8);

        List<float[]> records = inputs(12, 16);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        List<float[]> actual = sortedByFirst(
                FlinkClusters.collect(env.fromData(records).rebalance().map(new OnnxInference(ort.toString()))));
        List<float[]> expected =
                sortedByFirst(records.stream().map(mlp::reference).collect(Collectors.toList()));
        for (int i = 0; i < expected.size(); i++) {
            assertThat(actual.get(i)).containsExactly(expected.get(i), within(1e-5f));
        }
    }

    /** Rows sorted by their first value, so parallel output can be compared with a reference. */
    private static List<float[]> sortedByFirst(List<float[]> rows) {
        List<float[]> copy = new ArrayList<>(rows);
        copy.sort(Comparator.comparingDouble(r -> r[0]));
        return copy;
    }
}
