package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BundledModelTest {
    @TempDir Path dir;

    @Test
    void bundledModelIsExactlyWhatItsScriptMakes() throws Exception {
        Path generated = dir.resolve("demo-mlp.onnx");
        DemoModel.MLP.writeTo(generated);
        if (Boolean.getBoolean("regenerate")) {
            Files.copy(generated, Path.of("src/main/resources/models/demo-mlp.onnx"),
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        try (InputStream bundled = getClass().getResourceAsStream("/models/demo-mlp.onnx")) {
            assertThat(bundled).as("bundled model on the classpath").isNotNull();
            assertThat(bundled.readAllBytes()).isEqualTo(Files.readAllBytes(generated));
        }
    }
}
