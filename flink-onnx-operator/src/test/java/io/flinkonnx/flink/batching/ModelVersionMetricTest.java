package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.runtime.clusterframework.types.ResourceID;
import org.apache.flink.runtime.executiongraph.ExecutionAttemptID;
import org.apache.flink.runtime.metrics.groups.TaskManagerMetricGroup;
import org.apache.flink.runtime.metrics.groups.TaskMetricGroup;
import org.apache.flink.runtime.metrics.util.TestingMetricRegistry;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.runtime.operators.testutils.MockInputSplitProvider;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The version serving, as metric reporters can carry it: a {@code model_info} gauge whose group variable
 * {@code version} names the version (a Prometheus label), 1 while that version serves. Reporters drop a string
 * gauge's value, so the {@code model_version} string gauge alone never reaches Prometheus. Through Flink's own
 * metric groups on a registry that records every registration.
 */
class ModelVersionMetricTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;
    private static final TypeInformation<Tuple2<String, float[]>> SCORED = Types.TUPLE(Types.STRING, FLOATS);
    private static final long POLL_MILLIS = 60_000;

    @TempDir
    Path dir;

    /** version label -> its model_info gauge, as registered on the TaskManager's metric registry. */
    private final Map<String, Gauge<?>> modelInfo = new ConcurrentHashMap<>();

    private final TestingMetricRegistry registry = TestingMetricRegistry.builder()
            .setRegisterConsumer((metric, name, group) -> {
                if (name.equals("model_info")) {
                    modelInfo.put(group.getAllVariables().get("<" + InferenceRunner.VERSION_VARIABLE + ">"), (Gauge<?>)
                            metric);
                }
            })
            .build();

    private Path publish(int seed, String version) throws IOException {
        return new TestModels.Mlp(4, 8, 2, seed)
                .writeTo(Files.createDirectories(dir.resolve("models").resolve(version))
                        .resolve("model.onnx"));
    }

    private OneInputStreamOperatorTestHarness<float[], Tuple2<String, float[]>> harness(
            BatchingInferenceOperator<float[], Tuple2<String, float[]>> operator, MockEnvironment env)
            throws Exception {
        var h = new OneInputStreamOperatorTestHarness<>(operator, env);
        h.setProcessingTime(0);
        h.open();
        return h;
    }

    private MockEnvironment environment() {
        TaskMetricGroup task = TaskManagerMetricGroup.createTaskManagerMetricGroup(
                        registry, "localhost", ResourceID.generate())
                .addJob(new JobID(), "versions")
                .addTask(ExecutionAttemptID.randomId(), "score");
        return new MockEnvironmentBuilder()
                .setTaskName("score")
                .setManagedMemorySize(3 * 1024 * 1024)
                .setInputSplitProvider(new MockInputSplitProvider())
                .setBufferSize(1024)
                .setMetricGroup(task)
                .build();
    }

    private static OnnxInferenceSpec<float[], Tuple2<String, float[]>> spec(Path model) {
        return OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> Tuple2.of(out.modelVersion(), out.floats("y")), SCORED)
                .build();
    }

    private static BatchPolicy policy() {
        return BatchPolicy.builder()
                .maxBatchSize(4)
                .maxBatchDelay(Duration.ZERO)
                .build();
    }

    private Map<String, Object> modelInfoValues() {
        Map<String, Object> values = new TreeMap<>();
        modelInfo.forEach((version, gauge) -> values.put(version, gauge.getValue()));
        return values;
    }

    @Test
    void theBatchingOperatorReportsItsModelVersionAsTheLabelOfAModelInfoGaugeReadingOne() throws Exception {
        Path v7 = publish(1, "v7");
        var operator = new BatchingInferenceOperator<>(spec(v7), policy(), FailedRecord.tag(FLOATS));
        try (MockEnvironment env = environment();
                var h = harness(operator, env)) {
            h.processElement(new StreamRecord<>(TestModels.features(1, 4), 1));
            assertThat(modelInfoValues()).containsExactly(Map.entry("v7", 1));
        }
    }

    @Test
    void afterASwapTheOldVersionsModelInfoReadsZeroAndTheNewVersionsReadsOne() throws Exception {
        Path v1 = publish(1, "v1");
        var operator = new BatchingInferenceOperator<>(
                spec(v1),
                policy(),
                FailedRecord.tag(FLOATS),
                ModelUpdates.watch(dir.resolve("models").toString(), Duration.ofMillis(POLL_MILLIS)));
        try (MockEnvironment env = environment();
                var h = harness(operator, env)) {
            // the first poll finds v1 itself: nothing to swap
            assertThat(operator.versions().awaitLoaded(Duration.ofSeconds(60))).isTrue();
            h.setProcessingTime(50);
            assertThat(modelInfoValues()).containsExactly(Map.entry("v1", 1));

            publish(2, "v2");
            h.setProcessingTime(50 + POLL_MILLIS); // the next poll finds v2 and loads it
            assertThat(operator.versions().awaitLoaded(Duration.ofSeconds(60))).isTrue();
            h.setProcessingTime(100 + POLL_MILLIS); // the operator's check timer: the swap happens here
            assertThat(operator.versions().serving().version).isEqualTo("v2");
            assertThat(modelInfoValues()).containsExactly(Map.entry("v1", 0), Map.entry("v2", 1));
        }
    }
}
