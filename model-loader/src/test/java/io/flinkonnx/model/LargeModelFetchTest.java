package io.flinkonnx.model;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.model.testing.TestModels;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fetching streams a model: neither the copy, the digest nor the parse holds its weights in the heap. Proven in
 * a JVM of its own whose heap is half the size of the model's embedded weights.
 */
class LargeModelFetchTest {
    private static final String HEAP = "-Xmx32m";

    @TempDir
    Path dir;

    @Test
    void aModelWhoseEmbeddedWeightsAreTwiceTheHeapIsFetchedCheckedAndHashed() throws Exception {
        // w1 is 4096 x 4096 floats: 64 MiB of raw_data inside the model file.
        Path file = new TestModels.Mlp(4096, 4096, 2).writeTo(dir.resolve("big.onnx"));
        assertThat(Files.size(file)).isGreaterThan(64L << 20);
        String sha256;
        try (InputStream in = Files.newInputStream(file)) {
            sha256 = ModelSource.copyHashing(in, null).sha256;
        }
        Path tempRoot = Files.createDirectories(dir.resolve("fetch-tmp"));

        Process p = new ProcessBuilder(List.of(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        HEAP,
                        "-XX:+UseSerialGC",
                        "-cp",
                        System.getProperty("java.class.path"),
                        FetchInSmallHeap.class.getName(),
                        file.toString(),
                        tempRoot.toString()))
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("output.txt").toFile())
                .start();
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        String output = Files.readString(dir.resolve("output.txt"), StandardCharsets.UTF_8);

        assertThat(p.exitValue()).as("exit status; output:%n%s", output).isZero();
        assertThat(output)
                .contains("sha256 " + sha256)
                .contains("signature [x:FLOAT[batch,4096]] -> [y:FLOAT[batch,2]]");
        assertThat(tempRoot).isEmptyDirectory();
    }
}
