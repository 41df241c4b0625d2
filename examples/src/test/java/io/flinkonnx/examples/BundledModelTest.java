package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BundledModelTest {
    @TempDir
    Path dir;

    @Test
    void bundledFraudModelAndGoldenVectorsAreExactlyWhatTheTrainerMakes() throws Exception {
        FraudModelTrainer trained = FraudModelTrainer.train();
        Path model = dir.resolve("fraud-mlp.onnx");
        trained.writeModel(model);
        trained.writeGoldenVectors(dir.resolve("golden"));
        if (Boolean.getBoolean("regenerate")) {
            Path resources = Path.of("src/main/resources/models");
            Files.copy(model, resources.resolve("fraud-mlp.onnx"), StandardCopyOption.REPLACE_EXISTING);
            Path golden = Files.createDirectories(resources.resolve("fraud-mlp-golden/test_data_set_0"));
            for (String f : new String[] {"input_0.pb", "output_0.pb"}) {
                Files.copy(
                        dir.resolve("golden/test_data_set_0").resolve(f),
                        golden.resolve(f),
                        StandardCopyOption.REPLACE_EXISTING);
            }
        }
        assertThat(resource("/models/fraud-mlp.onnx")).isEqualTo(Files.readAllBytes(model));
        for (String f : new String[] {"input_0.pb", "output_0.pb"}) {
            assertThat(resource("/models/fraud-mlp-golden/test_data_set_0/" + f))
                    .isEqualTo(Files.readAllBytes(
                            dir.resolve("golden/test_data_set_0").resolve(f)));
        }
    }

    @Test
    void trainedFraudModelRanksFraudAboveLegitimateTransactions() {
        double[] aucAndFraudRate = FraudModelTrainer.train().evaluate(20_000);
        assertThat(aucAndFraudRate[1]).as("fraud rate").isBetween(0.02, 0.2);
        assertThat(aucAndFraudRate[0]).as("ROC AUC on held-out transactions").isGreaterThan(0.8);
    }

    private byte[] resource(String name) throws IOException {
        try (InputStream in = getClass().getResourceAsStream(name)) {
            assertThat(in).as(name + " on the classpath").isNotNull();
            return in.readAllBytes();
        }
    }

    @Test
    void bundledModelIsExactlyWhatItsScriptMakes() throws Exception {
        Path generated = dir.resolve("demo-mlp.onnx");
        DemoModel.MLP.writeTo(generated);
        if (Boolean.getBoolean("regenerate")) {
            Files.copy(
                    generated, Path.of("src/main/resources/models/demo-mlp.onnx"), StandardCopyOption.REPLACE_EXISTING);
        }
        try (InputStream bundled = getClass().getResourceAsStream("/models/demo-mlp.onnx")) {
            assertThat(bundled).as("bundled model on the classpath").isNotNull();
            assertThat(bundled.readAllBytes()).isEqualTo(Files.readAllBytes(generated));
        }
    }
}
