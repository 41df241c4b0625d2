package io.flinkonnx.flink.versions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The watched folder's rule: which version is the newest, and what the newest's files say. */
class ModelFolderTest {
    @TempDir
    Path dir;

    private void version(String folder, String file) throws IOException {
        Files.writeString(Files.createDirectories(dir.resolve(folder)).resolve(file), "not read by the rule");
    }

    private String newest() throws IOException {
        return ModelFolder.newest(dir.toString()).orElseThrow().label;
    }

    @Test
    void numbersCompareRunByRunSoSemanticVersionsAndDatesOrderAsPeopleRead() throws IOException {
        version("1.9.9", "model.onnx");
        version("2.1.0", "model.onnx");
        version("2.10.0", "model.onnx");
        assertThat(newest()).isEqualTo("2.10.0");

        version("v9", "m.onnx");
        version("v10", "m.onnx");
        assertThat(ModelFolder.numbersIn("v10")).containsExactly(10);
        Files.createDirectories(dir.resolve("more"));
        version("more/2026-11-25", "model.onnx");
        version("more/2026-11-26", "model.onnx");
        version("more/2026-09-30", "model.onnx");
        assertThat(ModelFolder.newest(dir.resolve("more").toString()).orElseThrow().label)
                .isEqualTo("2026-11-26");
    }

    @Test
    void aVersionBeingWrittenAndAFolderWithoutAModelArePassedOver() throws IOException {
        version("v3", "model.onnx");
        version(".v4.tmp-1a2b", "model.onnx");
        Files.createDirectories(dir.resolve("v5"));
        version("_v6", "model.onnx");
        assertThat(newest()).isEqualTo("v3");
    }

    @Test
    void onlyTheNewestVersionsSha256FileIsReadAndAMalformedOneNamesItself() throws IOException {
        version("v1", "model.onnx");
        Files.writeString(dir.resolve("v1/model.onnx.sha256"), "garbage in an old version");
        version("v2", "model.onnx");
        Files.writeString(dir.resolve("v2/model.onnx.sha256"), "AB".repeat(32) + "  model.onnx\n");
        assertThat(ModelFolder.newest(dir.toString()).orElseThrow().sha256).isEqualTo("ab".repeat(32));

        version("v3", "model.onnx");
        Files.writeString(dir.resolve("v3/model.onnx.sha256"), "not a digest");
        assertThatThrownBy(() -> ModelFolder.newest(dir.toString()))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("v3/model.onnx.sha256");
    }
}
