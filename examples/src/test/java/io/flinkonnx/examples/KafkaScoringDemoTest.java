package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The demo as a user runs it: its own JVM (so Log4j configures itself from the demo's log4j2.properties, as
 * under {@code exec:exec}), a real broker and MiniCluster, and what reaches the console.
 */
class KafkaScoringDemoTest {
    @TempDir
    Path dir;

    @Test
    void consoleFitsOneScreenWithTheSummaryAndNoLogLinesWhileTheLogsGoToTheFileItNames() throws Exception {
        Path log = dir.resolve("demo.log");
        Path console = dir.resolve("console.txt");
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx1g",
                "--add-opens=java.base/java.util=ALL-UNNAMED",
                "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "-D" + KafkaScoringDemo.LOG_FILE_PROPERTY + "=" + log,
                // The test classpath also holds the test utilities' log4j2-test.properties (console at WARN),
                // which Log4j would prefer; the demo's own configuration is what exec:exec runs with.
                "-Dlog4j2.configurationFile=" + KafkaScoringDemo.class.getResource("/log4j2.properties"),
                "-cp",
                System.getProperty("java.class.path"),
                KafkaScoringDemo.class.getName(),
                "--records=5000"));
        Process demo = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(console.toFile())
                .start();
        boolean exited = demo.waitFor(3, TimeUnit.MINUTES);
        if (!exited) {
            demo.destroyForcibly();
        }
        String out = Files.readString(console, StandardCharsets.UTF_8);
        assertThat(exited).as("the demo exits; console so far:%n%s", out).isTrue();
        assertThat(demo.exitValue()).as(out).isZero();

        List<String> lines = out.lines().toList();
        assertThat(lines).as(out).hasSizeLessThanOrEqualTo(40);
        assertThat(lines)
                .as(out)
                .noneMatch(l -> l.contains("WARN") || l.contains("ERROR") || l.contains("Exception"))
                .noneMatch(l -> l.startsWith("\tat ") || l.startsWith("Caused by"));
        assertThat(out)
                .contains("Flink's and Kafka's logs: " + log)
                .contains("(1 malformed on purpose)")
                .containsPattern("Throughput +[\\d,]+ records/s steady state: 4,999 records scored in")
                .containsPattern("records/s with start-up: 5,000 records in")
                .containsPattern("Latency +p50 [\\d.]+ ms, p99 [\\d.]+ ms")
                .contains("Predictions   4,999 in 'predictions'")
                .contains("Dead letters  1 in 'dead-letters' (the malformed messages), for example:")
                .contains("t-4999 (partition ")
                .containsPattern("Fallback +CPU_AS_REQUESTED: asked 'cpu', 3 of 3 nodes on cpu")
                .contains("Drift         within tolerance against the bundled golden vectors")
                .containsPattern("Topics +on 127\\.0\\.0\\.1:\\d+ .*transactions -> predictions, dead-letters,"
                        + " fallback-reports, drift-reports")
                .endsWith("Done." + System.lineSeparator());
        // Flink's and Kafka's logs are in the file the demo named.
        assertThat(log).exists();
        assertThat(Files.readString(log)).contains("org.apache.flink.runtime.checkpoint.CheckpointCoordinator");
    }
}
