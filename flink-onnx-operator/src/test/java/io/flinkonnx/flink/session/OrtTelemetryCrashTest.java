package io.flinkonnx.flink.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ORT 1.29.0 on Linux corrupts memory when its environment is created with telemetry on and a command line of
 * about 4 KB or more, as every TaskManager has: on the development machine the JVM dies (SIGSEGV, exit 139),
 * on CI's machine the same child process happened to survive. Corruption has no reliable outcome, so no test
 * asserts the crash; the library refuses that combination with the fix instead, and
 * {@code ORT_DISABLE_TELEMETRY=1} lets the environment be created.
 */
class OrtTelemetryCrashTest {
    /** A JVM option that makes the command line as long as a TaskManager's class path does. */
    private static final String LONG_OPTION = "-Dflinkonnx.padding=" + "x".repeat(8_000);

    @TempDir
    Path dir;

    @Test
    void aLongCommandLineWithTelemetryOnIsARefusalNamingTheFixNeverACrash() throws Exception {
        Probe probe = runProbe(null);
        assertThat(probe.exitCode)
                .as("exit code (139 = SIGSEGV); output:%n%s", probe.output)
                .isNotEqualTo(139);
        if (OrtRuntime.ortJarVersion().startsWith("1.29.") && isLinux()) {
            assertThat(probe.exitCode).as(probe.output).isEqualTo(3);
            assertThat(probe.output)
                    .contains("REFUSED ONNX Runtime " + OrtRuntime.ortJarVersion() + " crashes this process")
                    .contains("Set ORT_DISABLE_TELEMETRY=1");
        } else {
            assertThat(probe.exitCode).as(probe.output).isZero();
            assertThat(probe.output).contains("CREATED " + OrtRuntime.ortJarVersion());
        }
    }

    @Test
    void withTelemetryDisabledTheSameCommandLineCreatesTheEnvironment() throws Exception {
        Probe probe = runProbe("1");
        assertThat(probe.exitCode).as(probe.output).isZero();
        assertThat(probe.output).contains("CREATED " + OrtRuntime.ortJarVersion());
    }

    @Test
    void onlyOrt129OnLinuxWithALongCommandLineAndTelemetryOnIsRefused() {
        long longLine = OrtRuntime.TELEMETRY_CRASH_CMDLINE_BYTES;
        assertThatThrownBy(() -> OrtRuntime.checkProcessCanCreateEnvironment("1.29.0", "Linux", null, longLine))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("(" + longLine + " bytes;");
        assertThatThrownBy(() -> OrtRuntime.checkProcessCanCreateEnvironment("1.29.3", "Linux", "0", longLine))
                .isInstanceOf(IllegalStateException.class);
        assertThatCode(() -> OrtRuntime.checkProcessCanCreateEnvironment("1.29.0", "Linux", "1", longLine))
                .doesNotThrowAnyException();
        assertThatCode(() -> OrtRuntime.checkProcessCanCreateEnvironment("1.29.0", "Linux", null, longLine - 1))
                .doesNotThrowAnyException();
        assertThatCode(() -> OrtRuntime.checkProcessCanCreateEnvironment("1.28.0", "Linux", null, longLine))
                .doesNotThrowAnyException();
        assertThatCode(() -> OrtRuntime.checkProcessCanCreateEnvironment("1.29.0", "Mac OS X", null, longLine))
                .doesNotThrowAnyException();
        // ORT shaded into a fat jar: its version cannot be read, so the check fails closed
        assertThatThrownBy(() -> OrtRuntime.checkProcessCanCreateEnvironment(null, "Linux", null, longLine))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("version unknown");
    }

    private Probe runProbe(String disableTelemetry) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path log = dir.resolve("probe-" + disableTelemetry + ".log");
        ProcessBuilder builder = new ProcessBuilder(
                        java,
                        "-Xmx256m",
                        LONG_OPTION,
                        "-cp",
                        System.getProperty("java.class.path"),
                        OrtEnvironmentProbe.class.getName())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile());
        if (disableTelemetry == null) {
            builder.environment().remove(OrtRuntime.DISABLE_TELEMETRY);
        } else {
            builder.environment().put(OrtRuntime.DISABLE_TELEMETRY, disableTelemetry);
        }
        Process child = builder.start();
        assertThat(child.waitFor(120, TimeUnit.SECONDS)).as("probe finished").isTrue();
        List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
        return new Probe(child.exitValue(), String.join(System.lineSeparator(), lines));
    }

    private static boolean isLinux() {
        return System.getProperty("os.name").toLowerCase(java.util.Locale.ROOT).contains("linux");
    }

    private record Probe(int exitCode, String output) {}
}
