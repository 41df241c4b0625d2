package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ScoringJobConfigTest {
    @TempDir
    Path dir;

    @Test
    void flagsOverrideThePropertiesFileWhichOverridesTheDefaults() throws Exception {
        Path file = Files.writeString(
                dir.resolve("job.properties"),
                "bootstrap.servers=kafka:9092\nbatch.max-size=128\nproviders=cuda > cpu\n");
        ScoringJobConfig c =
                ScoringJobConfig.fromArgs("--config=" + file, "--batch.max-size=256", "--topic.input=txns");
        assertThat(c.get("bootstrap.servers")).isEqualTo("kafka:9092");
        assertThat(c.getLong("batch.max-size")).isEqualTo(256);
        assertThat(c.get("providers")).isEqualTo("cuda > cpu");
        assertThat(c.get("topic.input")).isEqualTo("txns");
        assertThat(c.get("topic.output")).isEqualTo("predictions");
    }

    @Test
    void unknownKeysAndMalformedArgumentsAreRefused() {
        assertThatThrownBy(() -> ScoringJobConfig.fromArgs("--batch.size=1"))
                .hasMessageStartingWith("Unknown setting 'batch.size'. Known: bootstrap.servers, topic.input");
        assertThatThrownBy(() -> ScoringJobConfig.fromArgs("batch.max-size=1"))
                .hasMessage("Arguments are --key=value, got 'batch.max-size=1'");
        assertThatThrownBy(() -> ScoringJobConfig.defaults()
                        .with("batch.max-size", "many")
                        .getLong("batch.max-size"))
                .hasMessage("Setting batch.max-size must be an integer, got 'many'");
    }
}
