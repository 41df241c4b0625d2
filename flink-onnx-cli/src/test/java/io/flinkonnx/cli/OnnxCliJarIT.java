package io.flinkonnx.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.model.testing.TestModels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The shaded jar as a user runs it: {@code java -jar}, picocli inside, nothing else on the class path. */
class OnnxCliJarIT {
    private static final Path JAR = Path.of(System.getProperty("cli.jar", "target/flink-onnx-cli.jar"));

    @TempDir
    Path dir;

    @Test
    void shadedJarHoldsPicocliAndRunsVersionHelpAndUsageErrorsOnItsOwn() throws Exception {
        try (JarFile jar = new JarFile(JAR.toFile())) {
            assertThat(jar.getEntry("picocli/CommandLine.class")).isNotNull();
            assertThat(jar.getEntry("picocli/AutoComplete$GenerateCompletion.class"))
                    .isNotNull();
            assertThat(jar.getEntry("io/flinkonnx/cli/version.properties")).isNotNull();
        }
        assertThat(java("--version")).isZero();
        assertThat(output()).startsWith("flink-onnx-cli ").contains("picocli 4.7.7");
        assertThat(java("verify", "--help")).isZero();
        assertThat(output()).contains("usage: flink-onnx-cli verify");
        assertThat(java("publish", "--help")).isZero();
        assertThat(output()).contains("usage: flink-onnx-cli publish").contains("TO/vN/MODEL_FILE.sha256");
        assertThat(java("frobnicate")).isEqualTo(OnnxCli.USAGE);
        assertThat(output()).contains("Unknown command 'frobnicate'");
    }

    @Test
    void shadedJarPublishesAVersionFolderThroughFlinksFileSystem() throws Exception {
        Path model = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        Path models = dir.resolve("models");

        assertThat(java("publish", model.toString(), "--to", models.toString(), "--version", "8"))
                .as("output: %s", output())
                .isZero();

        String sha256 =
                HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(model)));
        assertThat(models.resolve("v8/mlp.onnx")).hasSameBinaryContentAs(model);
        assertThat(Files.readString(models.resolve("v8/mlp.onnx.sha256"))).isEqualTo(sha256 + "  mlp.onnx\n");
        try (Stream<Path> children = Files.list(models)) {
            assertThat(children.map(p -> p.getFileName().toString())).containsExactly("v8");
        }
        assertThat(java("publish", model.toString(), "--to", models.toString(), "--version", "8"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(output()).contains("already exists");
    }

    private int java(String... args) throws Exception {
        List<String> command = new java.util.ArrayList<>(
                List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar", JAR.toString()));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("output.txt").toFile())
                .start();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return p.exitValue();
    }

    private String output() throws Exception {
        return Files.readString(dir.resolve("output.txt"), StandardCharsets.UTF_8);
    }
}
