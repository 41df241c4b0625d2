package io.flinkonnx.flink.versions;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The versions of a watched folder, without an operator: what a poll loads and what it judges without a load. */
class ModelVersionsTest {
    private static final TestModels.Mlp V1 = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp V2 = new TestModels.Mlp(4, 8, 2, 2);

    @TempDir
    Path dir;

    private Path publish(TestModels.Mlp mlp, String version) throws Exception {
        return mlp.writeTo(
                Files.createDirectories(dir.resolve("models").resolve(version)).resolve("model.onnx"));
    }

    private static List<ModelVersions.Step<float[], float[]>> pollAndTake(ModelVersions<float[], float[]> versions)
            throws Exception {
        versions.poll();
        assertThat(versions.awaitLoaded(Duration.ofSeconds(60))).isTrue();
        return versions.takeReady();
    }

    @Test
    void theFirstPollFindsTheServingVersionByItsBytesWithoutLoadingItAgain() throws Exception {
        Path v1 = publish(V1, "v1");
        OnnxInferenceSpec<float[], float[]> spec = OnnxInference.<float[]>builder(v1.toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> out.floats("y"), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .build();
        try (ModelVersions<float[], float[]> versions = new ModelVersions<>(
                spec,
                ModelUpdates.watch(dir.resolve("models").toString(), Duration.ofMinutes(1)),
                BatchPolicy.builder().maxBatchSize(4).build(),
                "slot",
                0,
                getClass().getClassLoader(),
                new UnregisteredMetricsGroup())) {
            InferenceRunner<float[], float[]> serving = versions.openServing(null);
            try {
                List<ModelVersions.Step<float[], float[]>> first = pollAndTake(versions);
                assertThat(first).singleElement().satisfies(step -> {
                    assertThat(step.report.outcome).isEqualTo(ModelUpdateReport.Outcome.ALREADY_SERVING);
                    assertThat(step.report.version).isEqualTo("v1");
                    assertThat(step.runner).isNull();
                });
                assertThat(versions.candidatesOpened())
                        .as("candidates opened by the first poll")
                        .isZero();
                serving = versions.apply(first.get(0), serving, () -> {});

                publish(V2, "v2");
                List<ModelVersions.Step<float[], float[]>> second = pollAndTake(versions);
                assertThat(second).singleElement().satisfies(step -> assertThat(step.report.outcome)
                        .isEqualTo(ModelUpdateReport.Outcome.PROMOTED));
                assertThat(versions.candidatesOpened())
                        .as("a new version is loaded")
                        .isEqualTo(1);
                serving = versions.apply(second.get(0), serving, () -> {});
                assertThat(versions.serving().version).isEqualTo("v2");
            } finally {
                serving.close();
            }
        }
    }
}
