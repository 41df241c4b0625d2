package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.HardeningModels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A zero-sized dimension never reaches native code. Run in a forked JVM: if one did, ORT's integer Div
 * would kill the process with SIGFPE, which no in-process assertion could report.
 */
class EmptyRecordTest {
    @TempDir
    Path dir;

    @Test
    void anEmptySequenceIsARecordErrorAndNeverCrashesTheProcess() throws Exception {
        Path model = HardeningModels.writeIntegerMeanBySequenceLength(dir.resolve("int_mean.onnx"));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(
                        java,
                        "-Xmx512m",
                        "-XX:ErrorFile=" + dir.resolve("hs_err_pid%p.log"),
                        "-cp",
                        System.getProperty("java.class.path"),
                        EmptyRecordProbe.class.getName(),
                        model.toString())
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("probe.log").toFile())
                .start();
        assertThat(child.waitFor(180, TimeUnit.SECONDS)).as("probe finished").isTrue();
        List<String> lines = Files.readAllLines(dir.resolve("probe.log"), StandardCharsets.UTF_8);
        String output = String.join(System.lineSeparator(), lines);
        assertThat(child.exitValue())
                .as("child JVM exit code; output:%n%s", output)
                .isZero();

        String empty = "Input 'ids' is empty";
        assertThat(lines).anySatisfy(l -> assertThat(l).startsWith("MAP_FAILED: " + empty));
        assertThat(lines).contains("ALONE_SCORED: []");
        assertThat(lines).anySatisfy(l -> assertThat(l).startsWith("ALONE_DEAD_LETTER: " + empty));
        // the good records of the mixed batch are scored: (4+6)/2 = 5, 9/1 = 9
        assertThat(lines).contains("MIXED_SCORED: [5, 9]");
        assertThat(lines)
                .filteredOn(l -> l.startsWith("MIXED_DEAD_LETTER: "))
                .hasSize(1)
                .allSatisfy(l -> assertThat(l).contains(empty));
        assertThat(lines).contains("SURVIVED");
    }
}
