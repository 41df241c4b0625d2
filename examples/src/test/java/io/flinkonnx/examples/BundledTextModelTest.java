package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.text.testing.TextModels;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The text demo's bundled {@code models/text/encoder.onnx} and {@code tokenizer.json} are exactly what
 * {@link TextModels} (the text module's code-made test model, in its test-jar) writes. Regenerate them with
 * {@code -Dregenerate=true -Dtest=BundledTextModelTest}.
 */
class BundledTextModelTest {
    @TempDir
    Path dir;

    @Test
    void bundledTextEncoderAndTokenizerAreExactlyWhatTextModelsWrites() throws Exception {
        Path encoder = TextModels.writeEncoder(dir.resolve("encoder.onnx"));
        Path tokenizer = TextModels.writeTokenizer(dir.resolve("tokenizer.json"));
        for (Path generated : new Path[] {encoder, tokenizer}) {
            String name = generated.getFileName().toString();
            if (Boolean.getBoolean("regenerate")) {
                Files.copy(
                        generated,
                        Path.of("src/main/resources/models/text").resolve(name),
                        StandardCopyOption.REPLACE_EXISTING);
            }
            try (InputStream bundled = getClass().getResourceAsStream("/models/text/" + name)) {
                assertThat(bundled).as(name + " on the classpath").isNotNull();
                assertThat(bundled.readAllBytes()).as(name).isEqualTo(Files.readAllBytes(generated));
            }
        }
    }
}
