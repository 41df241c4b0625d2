package io.flinkonnx.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.model.testing.TestModels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ONNX Runtime logs to the process's native stderr, which no {@code PrintStream} of the CLI captures: these
 * run the CLI's {@code main} in a JVM of its own and read what the process really printed.
 */
class OnnxCliNativeLogTest {
    @TempDir
    Path dir;

    private record Run(int exit, String out, String err) {}

    /** The CLI without its main's quiet ORT environment: ORT at its default level, for the control. */
    public static final class DefaultOrtLogLevelCli {
        public static void main(String[] args) {
            System.exit(OnnxCli.run(args, System.out, System.err));
        }
    }

    private Run cli(String... args) throws Exception {
        return run(OnnxCli.class, args);
    }

    private Run run(Class<?> main, String... args) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path out = dir.resolve("out.txt");
        Path err = dir.resolve("err.txt");
        String[] command = new String[args.length + 4];
        command[0] = java;
        command[1] = "-cp";
        command[2] = System.getProperty("java.class.path");
        command[3] = main.getName();
        System.arraycopy(args, 0, command, 4, args.length);
        Process p = new ProcessBuilder(command)
                .redirectOutput(out.toFile())
                .redirectError(err.toFile())
                .start();
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        return new Run(
                p.exitValue(),
                Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
    }

    /** A reflect pad needs a length of 2: the synthetic warm-up (length 1) fails inside ORT; the model is fine. */
    private Path reflectPad() throws Exception {
        return TestModels.writeReflectPad(dir.resolve("reflect.onnx"));
    }

    @Test
    void aPassingCheckPrintsNoOnnxRuntimeErrorLines() throws Exception {
        Run run = cli("check", reflectPad().toString());
        assertThat(run.exit()).as(run.out() + run.err()).isEqualTo(OnnxCli.OK);
        assertThat(run.err()).doesNotContain("[E:onnxruntime").doesNotContain("[W:onnxruntime");
    }

    /** The control: at ORT's default level the same passing check does print ORT's ERROR line. */
    @Test
    void atOrtsDefaultLogLevelTheSameCheckPrintsOrtsErrorLine() throws Exception {
        Run run = run(DefaultOrtLogLevelCli.class, "check", reflectPad().toString());
        assertThat(run.exit()).as(run.out() + run.err()).isEqualTo(OnnxCli.OK);
        assertThat(run.err()).contains("[E:onnxruntime");
    }

    @Test
    void aFailingCheckStillSaysWhy() throws Exception {
        Path model = TestModels.writeIdentityWithOpset(dir.resolve("future.onnx"), 99);
        Run run = cli("check", model.toString());
        assertThat(run.exit()).isEqualTo(1);
        assertThat(run.err()).contains("uses opset 99 of domain 'ai.onnx'");
    }
}
