package io.flinkonnx.model;

import static io.flinkonnx.model.PinDigests.documentedPin;
import static io.flinkonnx.model.PinDigests.sha256Of;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.model.testing.MirrorFileSystemFactory;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.fs.FileSystem;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Remote models are streamed to disk, hashed while streaming, and leave nothing behind when a fetch fails. */
class RemoteModelFetchTest {
    private static final int MIB = 1 << 20;
    /** 1024 x 2048 floats: an 8 MiB external weights file. */
    private static final TestModels.Mlp BIG = new TestModels.Mlp(1024, 2048, 2);

    @TempDir
    Path dir;

    private Path tempRoot;
    private Path model;
    private Path weights;
    private String uri;

    @BeforeAll
    static void installFileSystems() {
        FileSystem.initialize(new Configuration(), null);
    }

    @BeforeEach
    void writeModel() throws IOException {
        tempRoot = Files.createDirectories(dir.resolve("fetch-tmp"));
        model = BIG.writeWithExternalWeights(dir.resolve("remote/big.onnx"), "w1.bin");
        weights = dir.resolve("remote/w1.bin");
        uri = MirrorFileSystemFactory.SCHEME + "://" + model.toAbsolutePath();
    }

    @AfterEach
    void clearFailures() {
        MirrorFileSystemFactory.clearFailures();
    }

    @Test
    void aMultiMebibyteExternalFileIsCopiedWithTheRightDigest() throws IOException {
        assertThat(Files.size(weights)).isEqualTo(8L * MIB);
        String pin = documentedPin(model, "w1.bin");
        try (LocalModel local = ModelSource.of(uri).withSha256(pin).fetch(tempRoot)) {
            assertThat(local.sha256()).isEqualTo(pin);
            assertThat(local.path()).startsWith(tempRoot).hasSameBinaryContentAs(model);
            assertThat(local.path().resolveSibling("w1.bin")).hasSameBinaryContentAs(weights);
            assertThat(sha256Of(local.path().resolveSibling("w1.bin"))).isEqualTo(sha256Of(weights));
        }
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void theExternalFileReachesTheDiskWhileItIsStillBeingRead() {
        AtomicLong onDiskAtFailure = new AtomicLong(-1);
        MirrorFileSystemFactory.failReadsOf(weights, 3L * MIB, () -> {
            onDiskAtFailure.set(sizeOfCopy("w1.bin"));
            return new IOException("connection reset (simulated)");
        });
        assertThatThrownBy(() -> ModelSource.of(uri).fetch(tempRoot))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(uri)
                .hasMessageContaining("'w1.bin'")
                .hasMessageContaining("connection reset (simulated)");
        // Streamed through a fixed buffer: all but the last buffer's worth was already written when reading failed.
        assertThat(onDiskAtFailure.get()).isBetween(3L * MIB - 64 * 1024, 3L * MIB);
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void anIOExceptionMidStreamRemovesTheTemporaryFolder() {
        MirrorFileSystemFactory.failReadsOf(weights, MIB, () -> new IOException("read timed out (simulated)"));
        assertThatThrownBy(() -> ModelSource.of(uri).fetch(tempRoot))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(uri)
                .hasMessageContaining("'w1.bin'")
                .hasMessageContaining("read timed out (simulated)");
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void anErrorMidStreamRemovesTheTemporaryFolderAndPropagatesUnchanged() {
        Error error = new NoClassDefFoundError("com/example/fs/Chunk (simulated)");
        MirrorFileSystemFactory.failReadsOf(weights, MIB, () -> error);
        assertThatThrownBy(() -> ModelSource.of(uri).fetch(tempRoot)).isSameAs(error);
        assertThat(tempRoot).isEmptyDirectory();
    }

    @Test
    void anErrorWhileReadingTheModelFileRemovesTheTemporaryFolder() {
        Error error = new InternalError("simulated");
        MirrorFileSystemFactory.failReadsOf(model, 100, () -> error);
        assertThatThrownBy(() -> ModelSource.of(uri).fetch(tempRoot)).isSameAs(error);
        assertThat(tempRoot).isEmptyDirectory();
    }

    /** Size of the file called {@code name} below the fetch's temporary root, -1 when there is none. */
    private long sizeOfCopy(String name) {
        try (Stream<Path> files = Files.walk(tempRoot)) {
            return files.filter(p -> p.getFileName().toString().equals(name))
                    .findFirst()
                    .map(p -> {
                        try {
                            return Files.size(p);
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    })
                    .orElse(-1L);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
