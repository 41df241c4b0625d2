package io.flinkonnx.flink.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ModelLoadException;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.RuntimeLimits;
import io.flinkonnx.model.testing.MirrorFileSystemFactory;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.providers.ExecutionProvider;
import io.flinkonnx.providers.ProviderResolution;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.assertj.core.groups.Tuple;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading real models into real sessions: sources, formats, external data, providers, bad models, metrics. */
class ModelLoadingTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void fileSystems() {
        FileSystem.initialize(new Configuration(), null);
    }

    @AfterEach
    void noSessionLeftOpen() {
        assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }

    private static void assertScoresLike(TestModels.Mlp mlp, InferenceRunner<float[], float[]> runner)
            throws Exception {
        for (int k = 0; k < 5; k++) {
            float[] x = TestModels.features(k, mlp.in);
            assertThat(runner.infer(x)).containsExactly(mlp.reference(x), within(1e-5f));
        }
    }

    @Test
    void externalDataModelLoadsFromItsFolder() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(8, 8, 2);
        Path model = mlp.writeWithExternalWeights(dir.resolve("ext/model.onnx"), "weights/w1.bin");
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(model.toString()).spec())) {
            assertScoresLike(mlp, runner);
        }
    }

    @Test
    void remoteModelIsFetchedWithItsExternalData() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(8, 8, 2);
        Path model = mlp.writeWithExternalWeights(dir.resolve("remote/model.onnx"), "w1.bin");
        String uri = MirrorFileSystemFactory.SCHEME + "://" + model.toAbsolutePath();
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(uri).spec())) {
            assertScoresLike(mlp, runner);
        }
    }

    @Test
    void aPinnedModelIsFetchedOncePerSlotWhileItsSessionIsOpen() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(8, 8, 2);
        Path model = mlp.writeTo(dir.resolve("remote/pinned.onnx"));
        ModelSource source = ModelSource.of(MirrorFileSystemFactory.SCHEME + "://" + model.toAbsolutePath())
                .withSha256(ModelSource.sha256Hex(Files.readAllBytes(model)));
        int before = MirrorFileSystemFactory.OPENS.get();
        try (InferenceRunner<float[], float[]> first = Runners.open(new OnnxInference(source).spec(), "slot-a");
                InferenceRunner<float[], float[]> second = Runners.open(new OnnxInference(source).spec(), "slot-a")) {
            assertThat(first.session()).isSameAs(second.session());
            assertThat(MirrorFileSystemFactory.OPENS.get() - before)
                    .as("downloads for two operators of one slot")
                    .isEqualTo(1);
            assertScoresLike(mlp, second);
        }
        // Unpinned, every operator fetches: the bytes behind a URI may have changed.
        ModelSource unpinned = ModelSource.of(source.uri());
        int unpinnedBefore = MirrorFileSystemFactory.OPENS.get();
        try (InferenceRunner<float[], float[]> first = Runners.open(new OnnxInference(unpinned).spec(), "slot-b");
                InferenceRunner<float[], float[]> second = Runners.open(new OnnxInference(unpinned).spec(), "slot-b")) {
            assertThat(first.session()).isSameAs(second.session());
            assertThat(MirrorFileSystemFactory.OPENS.get() - unpinnedBefore).isEqualTo(2);
        }
    }

    @Test
    void classpathModelLoads() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(8, 8, 2);
        Path root = dir.resolve("cp");
        mlp.writeTo(root.resolve("models/mlp.onnx"));
        ClassLoader previous = Thread.currentThread().getContextClassLoader();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {root.toUri().toURL()}, previous)) {
            Thread.currentThread().setContextClassLoader(loader);
            try (InferenceRunner<float[], float[]> runner =
                    Runners.open(new OnnxInference("classpath:models/mlp.onnx").spec())) {
                assertScoresLike(mlp, runner);
            }
        } finally {
            Thread.currentThread().setContextClassLoader(previous);
        }
    }

    @Test
    void cudaRequestedOnACpuBuildIsRecordedAsSkippedWithOrtEpFail() throws Exception {
        if (OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
            return; // a GPU build registers CUDA: nothing is skipped
        }
        TestModels.Mlp mlp = new TestModels.Mlp(8, 8, 2);
        Path model = mlp.writeTo(dir.resolve("m.onnx"));
        try (InferenceRunner<float[], float[]> runner = Runners.open(new OnnxInference(model.toString())
                .withProviders("tensorrt > cuda(device_id=0) > cpu")
                .spec())) {
            ProviderResolution resolution = runner.session().resolution();
            assertThat(resolution.registered()).containsExactly(ExecutionProvider.CPU);
            assertThat(resolution.skipped())
                    .extracting(ProviderResolution.Attempt::provider, ProviderResolution.Attempt::errorCode)
                    .containsExactly(
                            Tuple.tuple(ExecutionProvider.TENSORRT, "ORT_EP_FAIL"),
                            Tuple.tuple(ExecutionProvider.CUDA, "ORT_EP_FAIL"));
            assertThat(resolution.fellBack()).isTrue();
            assertScoresLike(mlp, runner);
        }
    }

    @Test
    void missingModelFailsNamingTheFile() {
        Path missing = dir.resolve("absent.onnx");
        assertThatThrownBy(() -> Runners.open(new OnnxInference(missing.toString()).spec()))
                .isInstanceOf(ModelLoadException.class)
                .hasMessage("Model file not found: " + missing.toAbsolutePath());
    }

    @Test
    void truncatedModelFailsBeforeOrtNamingTheFile() throws Exception {
        Path model = new TestModels.Mlp(16, 32, 4).writeTo(dir.resolve("m.onnx"));
        byte[] bytes = Files.readAllBytes(model);
        Files.write(model, Arrays.copyOf(bytes, bytes.length / 3));
        assertThatThrownBy(() -> Runners.open(new OnnxInference(model.toString()).spec()))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageStartingWith("Model file " + model.toAbsolutePath() + " is not a valid ONNX model");
    }

    @Test
    void externalDataEscapingTheFolderIsRefusedWhateverTheOrtVersion() throws Exception {
        Path model =
                new TestModels.Mlp(4, 4, 2).writeWithExternalWeights(dir.resolve("m/model.onnx"), "../outside.bin");
        assertThatThrownBy(() -> Runners.open(new OnnxInference(model.toString()).spec()))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("refers to external data '../outside.bin' outside the model's folder");
    }

    @Test
    void irVersionTooNewFailsBeforeOrt() throws Exception {
        Path model = TestModels.writeIdentityWithIrVersion(dir.resolve("ir.onnx"), 99);
        assertThatThrownBy(() -> Runners.open(new OnnxInference(model.toString()).spec()))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(
                        "has IR version 99, but ONNX Runtime " + OrtRuntime.version() + " reads IR versions up to");
    }

    @Test
    void limitsTableMatchesWhatThisOrtAccepts() throws Exception {
        RuntimeLimits limits = OrtRuntime.limits();
        assertThat(limits)
                .as("ORT %s is in the limits table", OrtRuntime.version())
                .isNotNull();
        long maxOpset = limits.maxOpset("");
        // The highest opset in the table loads; one more is refused by ORT itself.
        try (OrtSession s = OrtRuntime.env()
                .createSession(TestModels.writeIdentityWithOpset(dir.resolve("max.onnx"), maxOpset)
                        .toString())) {
            assertThat(s.getNumInputs()).isEqualTo(1);
        }
        assertThatThrownBy(() -> OrtRuntime.env()
                        .createSession(TestModels.writeIdentityWithOpset(dir.resolve("over.onnx"), maxOpset + 1)
                                .toString())
                        .close())
                .isInstanceOf(OrtException.class);
        try (OrtSession s = OrtRuntime.env()
                .createSession(TestModels.writeIdentityWithIrVersion(dir.resolve("ir.onnx"), limits.maxIrVersion())
                        .toString())) {
            assertThat(s.getNumOutputs()).isEqualTo(1);
        }
        assertThatThrownBy(() -> OrtRuntime.env()
                        .createSession(TestModels.writeIdentityWithIrVersion(
                                        dir.resolve("ir2.onnx"), limits.maxIrVersion() + 1)
                                .toString())
                        .close())
                .isInstanceOf(OrtException.class);
    }

    @Test
    void ortSignatureTypesFollowOnnxNotOrtEnumNumbers() throws Exception {
        Path model = TestModels.writeInt64Affine(dir.resolve("int64.onnx"));
        try (OrtSession s = OrtRuntime.env().createSession(model.toString())) {
            ModelSignature sig = SessionLoader.signatureFromSession(s);
            assertThat(sig.inputs()).extracting(Object::toString).containsExactly("ids:INT64[batch,3]");
        }
    }

    @Test
    void registersLoadTimeModelSizeAndOpenSessionGauges() throws Exception {
        Path model = new TestModels.Mlp(4, 4, 2).writeTo(dir.resolve("m.onnx"));
        Map<String, Metric> metrics = new HashMap<>();
        UnregisteredMetricsGroup group = new UnregisteredMetricsGroup() {
            @Override
            public <T, G extends Gauge<T>> G gauge(String name, G gauge) {
                metrics.put(name, gauge);
                return gauge;
            }

            @Override
            public MetricGroup addGroup(String name) {
                return this;
            }
        };
        InferenceRunner<float[], float[]> runner = new InferenceRunner<>(new OnnxInference(model.toString()).spec());
        runner.open("metrics-slot", 0, group);
        try {
            assertThat(metrics)
                    .containsKeys(
                            "load_model_latency_milli_secs",
                            "model_byte_size",
                            "open_sessions",
                            "nodes_on_cpu",
                            "cpu_time_fraction");
            assertThat(((Gauge<?>) metrics.get("model_byte_size")).getValue()).isEqualTo(Files.size(model));
            assertThat(((Gauge<?>) metrics.get("open_sessions")).getValue()).isEqualTo(1);
        } finally {
            runner.close();
        }
    }
}
