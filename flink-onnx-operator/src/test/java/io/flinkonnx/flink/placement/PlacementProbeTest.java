package io.flinkonnx.flink.placement;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelFormat;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.assertj.core.api.Assertions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The placement probe on its own: a report from one synthetic run, never a failed load. */
class PlacementProbeTest {
    @TempDir
    Path dir;

    /** A CPU session of {@code model} profiling into {@code dir/profile}. */
    private OrtSession profiled(Path model) throws Exception {
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.enableProfiling(dir.resolve("profile").toString());
            return OrtRuntime.env().createSession(model.toString(), options);
        }
    }

    private long profileFiles() throws Exception {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.getFileName().toString().startsWith("profile"))
                    .count();
        }
    }

    @Test
    void placesEveryKernelOfARealModelAndDeletesTheProfile() throws Exception {
        Path model = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        try (OrtSession session = profiled(model)) {
            PlacementProbe.Placement p = PlacementProbe.measure(session, SessionLoader.signatureFromSession(session));
            assertThat(p.note).isNull();
            assertThat(p.nodes).isNotEmpty();
            assertThat(p.nodes).extracting(n -> n.provider).containsOnly("cpu");
        }
        assertThat(profileFiles()).isZero();
    }

    @Test
    void integerDivisionByTheSyntheticInputRunsBecauseItIsOnesNotZeros() throws Exception {
        // y = x / x on INT64: a zero would kill the JVM with SIGFPE
        Path model = new OnnxGraph("div")
                .input("x", ElementType.INT64, "batch", 3L)
                .output("y", ElementType.INT64, "batch", 3L)
                .node("Div", new String[] {"x", "x"}, new String[] {"y"})
                .writeTo(dir.resolve("div.onnx"));
        try (OrtSession session = profiled(model)) {
            PlacementProbe.Placement p = PlacementProbe.measure(session, SessionLoader.signatureFromSession(session));
            assertThat(p.note).isNull();
            assertThat(p.nodes).extracting(n -> n.opType).contains("Div");
        }
        assertThat(profileFiles()).isZero();
    }

    @Test
    void aRunThatFailsBecomesTheNoteAndTheProfileIsStillEndedAndDeleted() throws Exception {
        Path model = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        try (OrtSession session = profiled(model)) {
            // a signature that disagrees with the model: the synthetic input has the wrong width
            ModelSignature wrong = new ModelSignature(
                    ModelFormat.ORT,
                    0,
                    Map.of(),
                    "",
                    "",
                    List.of(TensorSpec.tensor(
                            session.getInputNames().iterator().next(),
                            ElementType.FLOAT,
                            List.of(Dim.symbolic("batch"), Dim.fixed(5)))),
                    SessionLoader.signatureFromSession(session).outputs());
            PlacementProbe.Placement p = PlacementProbe.measure(session, wrong);
            assertThat(p.nodes).isNull();
            assertThat(p.note).startsWith("warm-up run on a synthetic input failed: ai.onnxruntime.OrtException");
        }
        assertThat(profileFiles()).isZero();
    }

    @Test
    void aSessionThatWasNotProfiledGivesANoteNotAnException() throws Exception {
        Path model = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        try (OrtSession session = OrtRuntime.env().createSession(model.toString())) {
            PlacementProbe.Placement p = PlacementProbe.measure(session, SessionLoader.signatureFromSession(session));
            assertThat(p.nodes).isNull();
            assertThat(p.note).isNotBlank();
        }
    }

    @Test
    void inputsLargerThanARecordMayBeAreRefusedNotAllocated() {
        TensorSpec wide = TensorSpec.tensor(
                "x",
                ElementType.FLOAT,
                List.of(Dim.symbolic("batch"), Dim.fixed(OnnxInferenceSpec.DEFAULT_MAX_RECORD_BYTES / 4 + 1)));
        Assertions.assertThatThrownBy(() -> PlacementProbe.ones(OrtRuntime.env(), wide))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(
                        "too large to synthesize (more than " + OnnxInferenceSpec.DEFAULT_MAX_RECORD_BYTES);
    }

    @Test
    void syntheticTensorsAreOnesWithFreeDimsAndTheBatchAxisOne() throws Exception {
        List<Dim> dims = List.of(Dim.symbolic("batch"), Dim.fixed(2), Dim.unknown());
        try (OnnxTensor t = PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("f", ElementType.FLOAT, dims))) {
            assertThat(t.getInfo().getShape()).containsExactly(1, 2, 1);
            assertThat((float[][][]) t.getValue()).isDeepEqualTo(new float[][][] {{{1f}, {1f}}});
        }
        try (OnnxTensor t = PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("i", ElementType.INT32, dims))) {
            assertThat((int[][][]) t.getValue()).isDeepEqualTo(new int[][][] {{{1}, {1}}});
        }
        try (OnnxTensor t = PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("b", ElementType.BOOL, dims))) {
            assertThat((boolean[][][]) t.getValue()).isDeepEqualTo(new boolean[][][] {{{true}, {true}}});
        }
        try (OnnxTensor t = PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("u", ElementType.UINT8, dims))) {
            assertThat(t.getByteBuffer().get(0)).isEqualTo((byte) 1);
        }
        try (OnnxTensor t = PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("h", ElementType.FLOAT16, dims))) {
            assertThat(t.getFloatBuffer().get(0)).isEqualTo(1f); // 1.0, not the bit pattern 1
        }
        try (OnnxTensor t = PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("s", ElementType.STRING, dims))) {
            assertThat((String[][][]) t.getValue()).isDeepEqualTo(new String[][][] {{{""}, {""}}});
        }
        try (OnnxTensor t =
                PlacementProbe.ones(OrtRuntime.env(), TensorSpec.tensor("scalar", ElementType.DOUBLE, List.of()))) {
            assertThat(t.getInfo().getShape()).isEmpty();
            assertThat(t.getDoubleBuffer().get(0)).isEqualTo(1d);
        }
    }
}
