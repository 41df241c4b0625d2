package io.flinkonnx.flink.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A session's resident memory is measured when it is created and first run, not taken from its file, and a
 * session that asks for ORT's global thread pool in a process whose environment has none fails naming the
 * property that creates one.
 */
class ResidentMemoryTest {
    /** Values the wide model expands each record to: 64 MiB of floats, kept by ORT's arena after the warm-up. */
    static final long WIDE_VALUES = 16L << 20;

    @TempDir
    Path dir;

    static Path writeWideModel(Path file) throws IOException {
        return TestModels.writeWide(file, WIDE_VALUES);
    }

    @Test
    void aSessionsResidentBytesAreMeasuredAtLoadNotTakenFromItsFile() throws Exception {
        Path model = writeWideModel(dir.resolve("wide.onnx"));
        ResidentMemory.forget();
        SharedSession s = SessionLoader.acquire(
                ModelSource.of(model.toString()), "memory-test", ProviderChain.cpu(), SessionSettings.defaults());
        try {
            assertThat(s.modelSizeBytes()).isEqualTo(Files.size(model)).isLessThan(4096);
            if (ResidentMemory.residentBytes() > 0) { // Linux (/proc), where CI runs
                assertThat(s.measuredResidentBytes())
                        .as("the warm-up's 64 MiB intermediate stays in ORT's arena")
                        .isGreaterThan(WIDE_VALUES * 4 / 2);
                assertThat(s.residentBytes()).isEqualTo(s.measuredResidentBytes());
            } else {
                assertThat(s.residentBytes()).isEqualTo(s.modelSizeBytes());
            }
        } finally {
            SessionRegistry.INSTANCE.release(s);
        }
    }

    @Test
    void aSessionAskingForTheGlobalPoolFailsNamingThePropertyWhenTheEnvironmentHasNone() throws Exception {
        Path model = writeWideModel(dir.resolve("wide.onnx"));
        // this test JVM runs without the property: its environment has no global pool
        assertThat(System.getProperty(OrtRuntime.GLOBAL_POOL_THREADS_PROPERTY)).isNull();
        assertThat(OrtRuntime.globalPoolThreads()).isZero();
        SessionSettings global = SessionSettings.builder()
                .threadPool(SessionSettings.ThreadPool.GLOBAL)
                .build();
        assertThatThrownBy(() -> SessionLoader.acquire(
                        ModelSource.of(model.toString()), "pool-test", ProviderChain.cpu(), global))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("-D" + OrtRuntime.GLOBAL_POOL_THREADS_PROPERTY + "=<threads>")
                .hasMessageContaining("created without one");
    }

    @Test
    void aLoadNeverWaitsForAnotherLoadsMeasurementAndRunsUnmeasuredMeanwhile() throws Exception {
        ResidentMemory.forget();
        CountDownLatch measuring = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<ResidentMemory.Measured<String>> slow = CompletableFuture.supplyAsync(() -> {
            try {
                return ResidentMemory.measure("slow model", () -> {
                    measuring.countDown();
                    release.await(); // a long load (a big model, a TensorRT engine build) being measured
                    return "slow";
                });
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        try {
            assertThat(measuring.await(30, TimeUnit.SECONDS)).isTrue();
            // on this thread, while the slow load holds the measurement: runs at once, learns nothing
            ResidentMemory.Measured<String> other = ResidentMemory.measure("other model", () -> "other");
            assertThat(other.value).isEqualTo("other");
            assertThat(other.bytes).isZero();
            assertThat(ResidentMemory.learnt("other model")).isZero();
        } finally {
            release.countDown();
        }
        assertThat(slow.get(30, TimeUnit.SECONDS).value).isEqualTo("slow");
    }
}
