package io.flinkonnx.model;

import static io.flinkonnx.model.PinDigests.documentedPin;
import static io.flinkonnx.model.PinDigests.sha256Of;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.model.testing.MirrorFileSystemFactory;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.fs.FileSystem;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The sha256 pin covers the model and its external data, and ONNX Runtime gets the bytes that were checked. */
class ModelPinTest {
    @TempDir
    Path dir;

    private Path tempRoot;

    @BeforeAll
    static void installFileSystems() {
        FileSystem.initialize(new Configuration(), null);
    }

    @BeforeEach
    void createTempRoot() throws IOException {
        tempRoot = Files.createDirectories(dir.resolve("fetch-tmp"));
    }

    @Test
    void theDigestOfAModelWithExternalDataCoversItsExternalFilesAsDocumented() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("m/mlp.onnx"), "data/w1.bin");
        String pin = documentedPin(file, "data/w1.bin");
        assertThat(pin).isNotEqualTo(sha256Of(file));
        try (LocalModel model = ModelSource.of(file.toString()).fetch()) {
            assertThat(model.sha256()).isEqualTo(pin);
        }
        try (LocalModel model = ModelSource.of(file.toString()).withSha256(pin).fetch(tempRoot)) {
            assertThat(model.sha256()).isEqualTo(pin);
        }
    }

    @Test
    void aPinOfTheModelFileAloneNoLongerAcceptsRewrittenExternalData() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("m/mlp.onnx"), "w1.bin");
        String modelFileOnly = sha256Of(file);
        rewrite(dir.resolve("m/w1.bin"));
        assertThatThrownBy(() -> ModelSource.of(file.toString())
                        .withSha256(modelFileOnly)
                        .fetch(tempRoot))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("sha256 mismatch for model " + file)
                .hasMessageContaining("expected " + modelFileOnly)
                .hasMessageContaining("external data 'w1.bin'");
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void aPinnedModelWhoseExternalFileIsRewrittenIsRefusedNamingTheFileAndTheDigests() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("m/mlp.onnx"), "w1.bin");
        String pin = documentedPin(file, "w1.bin");
        Path weights = dir.resolve("m/w1.bin");
        rewrite(weights);
        String actual = documentedPin(file, "w1.bin");
        assertThatThrownBy(() -> ModelSource.of(file.toString()).withSha256(pin).fetch(tempRoot))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("sha256 mismatch for model " + file)
                .hasMessageContaining("expected " + pin)
                .hasMessageContaining("actual " + actual)
                .hasMessageContaining("external data 'w1.bin' sha256 " + sha256Of(weights));
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void aPinnedRemoteModelWhoseExternalFileIsRewrittenIsRefused() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("remote/mlp.onnx"), "data/w1.bin");
        String uri = MirrorFileSystemFactory.SCHEME + "://" + file.toAbsolutePath();
        String pin = documentedPin(file, "data/w1.bin");
        rewrite(dir.resolve("remote/data/w1.bin"));
        assertThatThrownBy(() -> ModelSource.of(uri).withSha256(pin).fetch(tempRoot))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("sha256 mismatch for model " + uri)
                .hasMessageContaining("expected " + pin)
                .hasMessageContaining(
                        "external data 'data/w1.bin' sha256 " + sha256Of(dir.resolve("remote/data/w1.bin")));
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void aPinnedLocalModelIsHandedOutAsAPrivateCopyThatChangesToTheOriginalDoNotReach() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("m/mlp.onnx"), "data/w1.bin");
        Path weights = dir.resolve("m/data/w1.bin");
        byte[] modelBytes = Files.readAllBytes(file);
        byte[] weightBytes = Files.readAllBytes(weights);
        String pin = documentedPin(file, "data/w1.bin");
        try (LocalModel model = ModelSource.of(file.toString()).withSha256(pin).fetch(tempRoot)) {
            assertThat(model.path()).isNotEqualTo(file.toAbsolutePath()).startsWith(tempRoot);
            assertThat(model.path().getFileName()).isEqualTo(file.getFileName());
            // Rewritten in place (same inode): neither a hard link nor the original path would survive this.
            Files.write(file, new byte[] {1, 2, 3});
            rewrite(weights);
            assertThat(model.path()).hasBinaryContent(modelBytes);
            assertThat(model.path().resolveSibling("data/w1.bin")).hasBinaryContent(weightBytes);
        }
    }

    @Test
    void thePrivateCopyOfAPinnedModelIsDeletedOnClose() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("m/mlp.onnx"), "w1.bin");
        Path copy;
        try (LocalModel model = ModelSource.of(file.toString())
                .withSha256(documentedPin(file, "w1.bin"))
                .fetch(tempRoot)) {
            copy = model.path();
            assertThat(copy).exists();
            assertThat(copy.resolveSibling("w1.bin")).exists();
        }
        assertThat(copy).doesNotExist();
        assertThat(tempRoot).isEmptyDirectory();
        assertThat(file).exists();
        assertThat(dir.resolve("m/w1.bin")).exists();
    }

    @Test
    void aPinOfAModelWithoutExternalDataIsTheFilesOwnSha256AndItIsCopiedToo() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        try (LocalModel model =
                ModelSource.of(file.toString()).withSha256(sha256Of(file)).fetch(tempRoot)) {
            assertThat(model.sha256()).isEqualTo(sha256Of(file));
            assertThat(model.path()).startsWith(tempRoot).hasSameBinaryContentAs(file);
        }
        assertThat(tempRoot).isEmptyDirectory();
    }

    private static void rewrite(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) (bytes[i] ^ 0x5a);
        }
        Files.write(file, bytes);
    }
}
