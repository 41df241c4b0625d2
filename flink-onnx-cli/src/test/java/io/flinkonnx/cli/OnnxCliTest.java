package io.flinkonnx.cli;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import com.google.protobuf.ByteString;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.testing.TestModels;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line's commands, output and exit status, on real models and real ORT sessions. */
class OnnxCliTest {
    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private Path model;
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    @BeforeEach
    void model() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 2);
        model = mlp.writeTo(dir.resolve("mlp.onnx"));
    }

    private int run(String... args) {
        out.reset();
        err.reset();
        return OnnxCli.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void inspectPrintsSignatureOpsetsDigestAndPlacement() {
        assertThat(run("inspect", model.toString(), "--providers", "cuda > cpu"))
                .isEqualTo(OnnxCli.OK);
        assertThat(out())
                .contains("format:     ONNX")
                .contains("sha256 ")
                .contains("IR:         8")
                .contains("opsets:     {ai.onnx=17}")
                .contains("x:FLOAT[batch,4]  (batch axis 0)")
                .contains("y:FLOAT[batch,2]")
                .contains("external data: none")
                .contains("FusedGemm");
        if (!OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
            assertThat(out()).contains("placement on cuda > cpu: ALL_ON_CPU").contains("skipped cuda: ORT_EP_FAIL");
        }
    }

    @Test
    void checkExitsZeroForAGoodModelAndOneWithTheReasonForABadOne() throws Exception {
        assertThat(run("check", model.toString())).isEqualTo(OnnxCli.OK);
        Path truncated = dir.resolve("cut.onnx");
        byte[] bytes = Files.readAllBytes(model);
        Files.write(truncated, Arrays.copyOf(bytes, bytes.length / 2));
        assertThat(run("check", truncated.toString())).isEqualTo(OnnxCli.FAILED);
        assertThat(err()).contains("FAILED: Model file " + truncated.toAbsolutePath() + " is not a valid ONNX model");
        Path future = TestModels.writeIdentityWithOpset(dir.resolve("future.onnx"), 99);
        assertThat(run("check", future.toString())).isEqualTo(OnnxCli.FAILED);
        assertThat(err()).contains("uses opset 99 of domain 'ai.onnx'");
    }

    @Test
    void checkHonoursASha256Pin() {
        assertThat(run("check", model + "@sha256:" + "0".repeat(64))).isEqualTo(OnnxCli.FAILED);
        assertThat(err()).contains("sha256 mismatch");
    }

    @Test
    void optimizeWritesAnOrtFileAndWarnsWhenItIsHardwareSpecific() throws Exception {
        Path ort = dir.resolve("out/mlp.ort");
        assertThat(run("optimize", model.toString(), "-o", ort.toString(), "--level", "all", "--format", "ort"))
                .isEqualTo(OnnxCli.OK);
        assertThat(ort).exists();
        assertThat(err()).contains("warning: optimization level ALL may bake hardware-specific layouts");
        Path portable = dir.resolve("out/mlp-basic.ort");
        assertThat(run("optimize", model.toString(), "-o", portable.toString())).isEqualTo(OnnxCli.OK);
        assertThat(err()).isEmpty();
        assertThat(run("inspect", portable.toString())).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("format:     ORT").contains("x:FLOAT[batch,4]");
    }

    @Test
    void verifyPassesOnGoldenVectorsAndFailsOnAWrongReference() throws Exception {
        float[] x = TestModels.features(1, 4);
        writeSet(dir.resolve("tests/test_data_set_0"), x, mlp.reference(x));
        assertThat(run(
                        "verify",
                        model.toString(),
                        "--test-data",
                        dir.resolve("tests").toString()))
                .isEqualTo(OnnxCli.OK);
        assertThat(out())
                .contains("test_data_set_0: PASS")
                .contains("y: max abs")
                .endsWith("PASS (1 data sets)\n");

        float[] wrong = mlp.reference(x);
        wrong[1] += 0.5f;
        writeSet(dir.resolve("bad/test_data_set_0"), x, wrong);
        assertThat(run(
                        "verify",
                        model.toString(),
                        "--test-data",
                        dir.resolve("bad").toString()))
                .isEqualTo(OnnxCli.FAILED);
        assertThat(out()).contains("test_data_set_0: FAIL").contains("50.0000% outside");
        // a looser tolerance accepts it
        assertThat(run(
                        "verify",
                        model.toString(),
                        "--test-data",
                        dir.resolve("bad").toString(),
                        "--atol",
                        "1"))
                .isEqualTo(OnnxCli.OK);
    }

    @Test
    void verifyExitsNonZeroNamingTheMissingOutputFileWhenOutput0IsRemoved() throws Exception {
        float[] x = TestModels.features(1, 4);
        Path set = dir.resolve("incomplete/test_data_set_0");
        writeSet(set, x, mlp.reference(x));
        Files.delete(set.resolve("output_0.pb"));
        assertThat(run(
                        "verify",
                        model.toString(),
                        "--test-data",
                        dir.resolve("incomplete").toString()))
                .as("exit status of verify on a set without output_0.pb; out: %s", out())
                .isEqualTo(OnnxCli.FAILED);
        assertThat(out())
                .contains("test_data_set_0: ERROR ")
                .contains("incomplete/test_data_set_0 is missing expected output output_0.pb (output 'y')")
                .endsWith("FAIL\n")
                .doesNotContain("PASS");
    }

    @Test
    void verifyExitsNonZeroWhenOneOfTwoSetsHasNoOutputsAtAll() throws Exception {
        float[] x = TestModels.features(1, 4);
        writeSet(dir.resolve("mixed/test_data_set_0"), x, mlp.reference(x));
        Path empty = dir.resolve("mixed/test_data_set_1");
        writeSet(empty, x, mlp.reference(x));
        Files.delete(empty.resolve("output_0.pb"));
        assertThat(run(
                        "verify",
                        model.toString(),
                        "--test-data",
                        dir.resolve("mixed").toString()))
                .as("a set that compares nothing is no pass; out: %s", out())
                .isEqualTo(OnnxCli.FAILED);
        assertThat(out())
                .contains("test_data_set_0: PASS")
                .contains("test_data_set_1: ERROR ")
                .contains("mixed/test_data_set_1 is missing expected output output_0.pb (output 'y')")
                .contains("the set has 0")
                .endsWith("FAIL\n");
    }

    @Test
    void verifyRefusesAnInputOfTheWrongTypeInsteadOfCastingIt() throws Exception {
        Path set = Files.createDirectories(dir.resolve("typed/test_data_set_0"));
        TensorProto.Builder ints = TensorProto.newBuilder()
                .setName("x")
                .setDataType(ElementType.INT64.onnxCode())
                .addDims(1)
                .addDims(4);
        for (int i = 0; i < 4; i++) {
            ints.addInt64Data(i);
        }
        Files.write(set.resolve("input_0.pb"), ints.build().toByteArray());
        Files.write(set.resolve("output_0.pb"), floats("y", new float[2], 1, 2).toByteArray());
        assertThat(run(
                        "verify",
                        model.toString(),
                        "--test-data",
                        dir.resolve("typed").toString()))
                .isEqualTo(OnnxCli.FAILED);
        assertThat(out())
                .contains("test_data_set_0: ERROR Input 'x' expects FLOAT values (float[]) but the record gave"
                        + " long[]; values are never cast");
    }

    @Test
    void usageErrorsExitTwo() {
        assertThat(run("frobnicate", model.toString())).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Unknown command 'frobnicate'").contains("usage:");
        assertThat(run("inspect")).isEqualTo(OnnxCli.USAGE);
        assertThat(run("verify", model.toString())).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("verify needs --test-data DIR");
    }

    @Test
    void usageErrorsPrintTheReasonAndTheCommandsUsageAndExitTwo() {
        assertThat(run()).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Missing command").contains("usage: flink-onnx-cli");
        assertThat(run("inspect")).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Missing required parameter: 'MODEL'").contains("usage: flink-onnx-cli inspect");
        assertThat(run("check", model.toString(), "--no-such-option")).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Unknown option: '--no-such-option'").contains("usage: flink-onnx-cli check");
        assertThat(run("optimize", model.toString())).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("optimize needs -o OUT").contains("usage: flink-onnx-cli optimize");
        assertThat(run("verify", model.toString(), "--test-data", dir.toString(), "--rtol", "lots"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("'lots'").contains("--rtol");
        assertThat(run("check", model.toString(), "second.onnx")).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Unmatched argument at index 2: 'second.onnx'");
        assertThat(out()).isEmpty();
    }

    @Test
    void helpOnTheToolAndOnEachCommandGoesToStandardOutputAndExitsZero() {
        assertThat(run("--help")).isEqualTo(OnnxCli.OK);
        assertThat(out())
                .contains("usage: flink-onnx-cli [-hV] [COMMAND]")
                .contains("inspect")
                .contains("check")
                .contains("optimize")
                .contains("verify")
                .contains("generate-completion")
                .contains("append @sha256:HEX to pin it")
                .contains("2 bad usage")
                .contains("generate-completion");
        assertThat(err()).isEmpty();
        assertThat(run("inspect", "--help")).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("usage: flink-onnx-cli inspect").contains("--providers=CHAIN");
        assertThat(run("check", "-h")).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("usage: flink-onnx-cli check").contains("MODEL");
        assertThat(run("optimize", "--help")).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("-o, --output=OUT").contains("--level=LEVEL").contains("--format=FORMAT");
        assertThat(run("verify", "--help")).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("--test-data=DIR").contains("--rtol=R").contains("--atol=A");
        assertThat(run("help", "verify")).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("usage: flink-onnx-cli verify");
    }

    @Test
    void versionNamesThisBuildAndTheOnnxRuntimeAndFlinkItWasBuiltWith() {
        assertThat(run("--version")).isEqualTo(OnnxCli.OK);
        assertThat(out())
                .containsPattern("flink-onnx-cli \\d+\\.\\d+\\.\\d+")
                .containsPattern("ONNX Runtime \\d+\\.\\d+\\.\\d+, Flink \\d+\\.\\d+\\.\\d+, picocli 4\\.7\\.7")
                .doesNotContain("${");
        assertThat(run("-V")).isEqualTo(OnnxCli.OK);
    }

    @Test
    void generateCompletionPrintsABashScriptCompletingCommandsAndOptions() {
        assertThat(run("generate-completion")).isEqualTo(OnnxCli.OK);
        assertThat(out())
                .contains("complete -F _complete_flink-onnx-cli")
                .contains("inspect")
                .contains("optimize")
                .contains("--test-data")
                .contains("--providers");
        assertThat(err()).isEmpty();
    }

    static void writeSet(Path set, float[] x, float[] y) throws Exception {
        Files.createDirectories(set);
        Files.write(set.resolve("input_0.pb"), floats("x", x, 1, x.length).toByteArray());
        Files.write(set.resolve("output_0.pb"), floats("y", y, 1, y.length).toByteArray());
    }

    private static TensorProto floats(String name, float[] values, long... dims) {
        ByteBuffer buf = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buf.putFloat(v);
        }
        TensorProto.Builder t = TensorProto.newBuilder()
                .setName(name)
                .setDataType(ElementType.FLOAT.onnxCode())
                .setRawData(ByteString.copyFrom(buf.array()));
        for (long d : dims) {
            t.addDims(d);
        }
        return t.build();
    }
}
