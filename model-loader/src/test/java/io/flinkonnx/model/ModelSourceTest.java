package io.flinkonnx.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.model.testing.MirrorFileSystemFactory;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.fs.FileSystem;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelSourceTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void installFileSystems() {
        // Loads the test-only mirror:// file system through Flink's own factory discovery.
        FileSystem.initialize(new Configuration(), null);
    }

    @Test
    void anUnpinnedLocalModelIsHandedOutAsAPrivateCopyOfTheBytesItsDigestNames() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        byte[] hashed = Files.readAllBytes(file);
        try (LocalModel model = ModelSource.of(file.toString()).fetch()) {
            // Replaced between the hash and ORT's load (a re-publish): the handed-out file still has the
            // bytes the digest names, so a session keyed, reported and checkpointed by it runs them.
            new TestModels.Mlp(4, 8, 3).writeTo(dir.resolve("mlp.onnx.new"));
            Files.move(dir.resolve("mlp.onnx.new"), file, StandardCopyOption.REPLACE_EXISTING);
            assertThat(model.path()).isNotEqualTo(file.toAbsolutePath()).hasBinaryContent(hashed);
            assertThat(model.sha256()).isEqualTo(ModelSource.sha256Hex(hashed));
            assertThat(model.sha256()).isNotEqualTo(ModelSource.sha256Hex(Files.readAllBytes(file)));
            // rewritten in place (same inode) too
            Files.write(file, new byte[] {1, 2, 3});
            assertThat(model.path()).hasBinaryContent(hashed);
        }
    }

    @Test
    void fetchesALocalPath() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        try (LocalModel model = ModelSource.of(file.toString()).fetch()) {
            assertThat(model.path()).hasSameBinaryContentAs(file);
            assertThat(model.format()).isEqualTo(ModelFormat.ONNX);
            assertThat(model.sha256()).isEqualTo(ModelSource.sha256Hex(Files.readAllBytes(file)));
            assertThat(model.sizeBytes()).isEqualTo(Files.size(file));
            assertThat(model.signature())
                    .get()
                    .extracting(s -> s.inputs().get(0).name())
                    .isEqualTo("x");
        }
        assertThat(file).exists();
    }

    @Test
    void fetchesAFileUri() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        try (LocalModel model = ModelSource.of(file.toUri().toString()).fetch()) {
            assertThat(model.path()).hasSameBinaryContentAs(file);
        }
    }

    @Test
    void fetchesAClasspathResourceToATemporaryCopyDeletedOnClose() throws IOException {
        Path root = Files.createDirectories(dir.resolve("cp"));
        new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(root.resolve("models/mlp.onnx"), "mlp.weights");
        ClassLoader previous = Thread.currentThread().getContextClassLoader();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {root.toUri().toURL()}, null)) {
            Thread.currentThread().setContextClassLoader(loader);
            Path copy;
            try (LocalModel model = ModelSource.of("classpath:models/mlp.onnx").fetch()) {
                copy = model.path();
                assertThat(copy).isNotEqualTo(root.resolve("models/mlp.onnx"));
                assertThat(copy).hasSameBinaryContentAs(root.resolve("models/mlp.onnx"));
                // External data travels with the model.
                assertThat(copy.resolveSibling("mlp.weights"))
                        .hasSameBinaryContentAs(root.resolve("models/mlp.weights"));
            }
            assertThat(copy).doesNotExist();
        } finally {
            Thread.currentThread().setContextClassLoader(previous);
        }
    }

    @Test
    void fetchesThroughAFlinkFileSystemWithExternalDataBesideIt() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("remote/mlp.onnx"), "data/w1.bin");
        String uri = MirrorFileSystemFactory.SCHEME + "://" + file.toAbsolutePath();
        try (LocalModel model = ModelSource.of(uri).fetch()) {
            assertThat(model.path()).hasSameBinaryContentAs(file);
            assertThat(model.path().getParent().resolve("data/w1.bin"))
                    .hasSameBinaryContentAs(dir.resolve("remote/data/w1.bin"));
        }
    }

    @Test
    void aFlinkFileSystemUriThatJavaNetUriRefusesIsStillFetchedThroughItsFileSystem() throws IOException {
        // A space is no valid java.net.URI character; Flink's Path takes it. It is no local path "mirror:/...".
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("remote/New York.onnx"));
        String uri = MirrorFileSystemFactory.SCHEME + "://" + file.toAbsolutePath();
        int opens = MirrorFileSystemFactory.OPENS.get();
        try (LocalModel model = ModelSource.of(uri).fetch()) {
            assertThat(model.path()).hasSameBinaryContentAs(file);
        }
        assertThat(MirrorFileSystemFactory.OPENS.get()).isGreaterThan(opens);
        assertThatThrownBy(
                        () -> ModelSource.of("nosuchfs://bucket/New York.onnx").fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("No Flink file system can read model nosuchfs://bucket/New York.onnx");
    }

    @Test
    void remoteModelWithMissingExternalDataFailsNamingIt() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("remote/mlp.onnx"), "w1.bin");
        Files.delete(dir.resolve("remote/w1.bin"));
        String uri = MirrorFileSystemFactory.SCHEME + "://" + file.toAbsolutePath();
        assertThatThrownBy(() -> ModelSource.of(uri).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(uri)
                .hasMessageContaining("external data 'w1.bin'");
    }

    @Test
    void localModelWithMissingExternalDataFailsNamingIt() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("mlp.onnx"), "w1.bin");
        Files.delete(dir.resolve("w1.bin"));
        assertThatThrownBy(() -> ModelSource.of(file.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("external data 'w1.bin', which does not exist");
    }

    @Test
    void externalDataEscapingTheFolderIsRefusedAtFetch() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("m/mlp.onnx"), "../escape.bin");
        assertThatThrownBy(() -> ModelSource.of(file.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("'../escape.bin' outside the model's folder");
    }

    @Test
    void matchingSha256PinIsAccepted() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        String digest = ModelSource.sha256Hex(Files.readAllBytes(file));
        try (LocalModel model =
                ModelSource.of(file.toString()).withSha256(digest.toUpperCase()).fetch()) {
            assertThat(model.sha256()).isEqualTo(digest);
        }
    }

    @Test
    void sha256MismatchFailsWithUriExpectedAndActual() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx"));
        String actual = ModelSource.sha256Hex(Files.readAllBytes(file));
        String expected = "0".repeat(64);
        assertThatThrownBy(() ->
                        ModelSource.of(file.toString()).withSha256(expected).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("sha256 mismatch for model " + file)
                .hasMessageContaining("expected " + expected)
                .hasMessageContaining("actual " + actual);
    }

    @Test
    void malformedSha256PinIsRejectedEagerly() {
        assertThatThrownBy(() -> ModelSource.of("m.onnx").withSha256("abc"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("must be 64 hexadecimal digits, got 'abc'");
    }

    @Test
    void missingLocalFileFailsNamingIt() {
        Path missing = dir.resolve("nope.onnx");
        assertThatThrownBy(() -> ModelSource.of(missing.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessage("Model file not found: " + missing.toAbsolutePath());
    }

    @Test
    void missingClasspathResourceFailsNamingIt() {
        assertThatThrownBy(() -> ModelSource.of("classpath:models/absent.onnx").fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model not found on the classpath: classpath:models/absent.onnx");
    }

    @Test
    void missingRemoteFileFailsNamingIt() {
        String uri = MirrorFileSystemFactory.SCHEME + "://"
                + dir.resolve("absent.onnx").toAbsolutePath();
        assertThatThrownBy(() -> ModelSource.of(uri).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file not found: " + uri);
    }

    @Test
    void unknownSchemeFailsNamingTheModelAndThePluginFix() {
        assertThatThrownBy(() -> ModelSource.of("nosuchfs://bucket/m.onnx").fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("nosuchfs://bucket/m.onnx")
                .hasMessageContaining("plugin");
    }

    @Test
    void truncatedModelFailsAtFetchNamingTheFile() throws IOException {
        Path file = new TestModels.Mlp(16, 32, 4).writeTo(dir.resolve("mlp.onnx"));
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(bytes, bytes.length - 100));
        assertThatThrownBy(() -> ModelSource.of(file.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file " + file.toAbsolutePath() + " is not a valid ONNX model");
    }

    @Test
    void recognizesOrtFormatByItsFlatbufferIdentifier() throws IOException {
        byte[] ort = new byte[64];
        System.arraycopy("ORTM".getBytes(StandardCharsets.US_ASCII), 0, ort, 4, 4);
        Path file = Files.write(dir.resolve("m.ort"), ort);
        try (LocalModel model = ModelSource.of(file.toString()).fetch()) {
            assertThat(model.format()).isEqualTo(ModelFormat.ORT);
            assertThat(model.signature()).isEmpty();
        }
    }

    @Test
    void externalDataReachedThroughASymlinkAndADotDotSegmentIsRefusedNamingModelTensorAndLocation() throws IOException {
        // model/sub -> outside/inner, so model/sub/../w.bin is outside/w.bin for the OS (and ORT 1.23), while the
        // path text normalizes to model/w.bin, a harmless file inside the model's folder.
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("model/mlp.onnx"), "sub/../w.bin");
        Path inner = Files.createDirectories(dir.resolve("outside/inner"));
        Files.copy(dir.resolve("model/w.bin"), dir.resolve("outside/w.bin"));
        Files.createSymbolicLink(dir.resolve("model/sub"), inner);
        assertThatThrownBy(() -> ModelSource.of(file.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file " + file.toAbsolutePath())
                .hasMessageContaining("external data 'sub/../w.bin'")
                .hasMessageContaining("tensor 'w1'")
                .hasMessageContaining("'..' segment");
    }

    @Test
    void externalDataThatIsASymlinkOutOfTheFolderIsRefusedAtFetch() throws IOException {
        Path file = new TestModels.Mlp(4, 8, 2).writeWithExternalWeights(dir.resolve("model/mlp.onnx"), "w.bin");
        Files.move(
                dir.resolve("model/w.bin"),
                Files.createDirectories(dir.resolve("outside")).resolve("w.bin"));
        Files.createSymbolicLink(dir.resolve("model/w.bin"), dir.resolve("outside/w.bin"));
        assertThatThrownBy(() -> ModelSource.of(file.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file " + file.toAbsolutePath())
                .hasMessageContaining("external data 'w.bin'")
                .hasMessageContaining("tensor 'w1'")
                .hasMessageContaining(
                        "a link to " + dir.resolve("outside/w.bin").toRealPath());
    }

    @Test
    void absoluteExternalDataLocationIsRefusedAtFetch() throws IOException {
        Path outside = Files.createDirectories(dir.resolve("outside")).resolve("w.bin");
        Path file = new TestModels.Mlp(4, 8, 2)
                .writeWithExternalWeights(
                        dir.resolve("model/mlp.onnx"), outside.toAbsolutePath().toString());
        assertThatThrownBy(() -> ModelSource.of(file.toString()).fetch())
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file " + file.toAbsolutePath())
                .hasMessageContaining("external data '" + outside.toAbsolutePath() + "' outside the model's folder")
                .hasMessageContaining("tensor 'w1'");
    }
}
