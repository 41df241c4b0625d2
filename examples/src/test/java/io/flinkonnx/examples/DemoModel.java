package io.flinkonnx.examples;

import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;

/**
 * The script that made {@code src/main/resources/models/demo-mlp.onnx}: a 32-64-4 MLP with the
 * deterministic weights of {@link TestModels.Mlp}. Regenerate with
 * {@code ./mvnw -pl examples -am test -Dtest=BundledModelTest -Dsurefire.failIfNoSpecifiedTests=false -Dregenerate=true}.
 */
public final class DemoModel {
    public static final TestModels.Mlp MLP = new TestModels.Mlp(QuickStartJob.FEATURES, 64, 4);

    private DemoModel() {}

    public static void main(String[] args) throws Exception {
        Path target = Path.of(args.length > 0 ? args[0] : "examples/src/main/resources/models/demo-mlp.onnx");
        MLP.writeTo(target);
        System.out.println("wrote " + target.toAbsolutePath());
    }
}
