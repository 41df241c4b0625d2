package io.flinkonnx.flink.models;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.ProcessMemory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.Metric;
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
 * Many models in one operator ({@code OnnxInference.batchedPerModel}), in Flink's operator harness: each
 * record is scored by its own model, at most {@code maxModels} sessions are open, a broken model or selector
 * costs only its own records, and cycling through the models many times does not grow the process.
 */
class ManyModelsTest {
    /** (model index, features). */
    private static final TypeInformation<Tuple2<Integer, float[]>> RECORD =
            Types.TUPLE(Types.INT, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    /** (model index, the version the output names, y). */
    private static final TypeInformation<Tuple3<Integer, String, float[]>> SCORED =
            Types.TUPLE(Types.INT, Types.STRING, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);

    @TempDir
    Path dir;

    private List<TestModels.Mlp> writeModels(int n, int in, int hidden) throws IOException {
        List<TestModels.Mlp> mlps = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            TestModels.Mlp mlp = new TestModels.Mlp(in, hidden, 2, i + 1);
            mlp.writeTo(model(i));
            mlps.add(mlp);
        }
        return mlps;
    }

    private Path model(int i) {
        return dir.resolve("fraud-" + i + ".onnx");
    }

    private OneInputStreamOperatorTestHarness<Tuple2<Integer, float[]>, Tuple3<Integer, String, float[]>> open(
            ModelSelector<Tuple2<Integer, float[]>> selector, ModelCache cache) throws Exception {
        OnnxInferenceSpec<Tuple2<Integer, float[]>, Tuple3<Integer, String, float[]>> spec =
                OnnxInference.<Tuple2<Integer, float[]>>builder(model(0).toString())
                        .encoder((r, row) -> row.put("x", r.f1))
                        .decoder((r, out) -> Tuple3.of(r.f0, out.modelVersion(), out.floats("y")), SCORED)
                        .build();
        MultiModelOperator<Tuple2<Integer, float[]>, Tuple3<Integer, String, float[]>> operator =
                new MultiModelOperator<>(
                        spec,
                        selector,
                        BatchPolicy.builder()
                                .maxBatchSize(4)
                                .maxBatchDelay(Duration.ofMillis(5))
                                .build(),
                        cache,
                        FailedRecord.tag(RECORD));
        var h = new OneInputStreamOperatorTestHarness<>(operator);
        h.setProcessingTime(0);
        h.open();
        return h;
    }

    private ModelSelector<Tuple2<Integer, float[]>> byIndex() {
        String folder = dir.toString();
        return r -> ModelRef.of(folder + "/fraud-" + r.f0 + ".onnx");
    }

    @SuppressWarnings("unchecked")
    private static List<Tuple3<Integer, String, float[]>> predictions(OneInputStreamOperatorTestHarness<?, ?> h) {
        List<Tuple3<Integer, String, float[]>> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord) {
                out.add(((StreamRecord<Tuple3<Integer, String, float[]>>) o).getValue());
            }
        }
        return out;
    }

    private static MultiModelOperator<?, ?> operator(OneInputStreamOperatorTestHarness<?, ?> h) {
        return (MultiModelOperator<?, ?>) h.getOperator();
    }

    @Test
    void twentyModelsFiveLoadedAtMostEachRecordScoredByItsOwnModel() throws Exception {
        List<TestModels.Mlp> mlps = writeModels(20, 4, 8);
        int openBefore = SessionStats.open();
        int maxOpen = 0;
        int records = 0;
        try (var h = open(byIndex(), ModelCache.builder().maxModels(5).build())) {
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < 20; i++) {
                    int model = (i * 7 + round) % 20; // interleaved: every model again and again
                    h.processElement(new StreamRecord<>(Tuple2.of(model, TestModels.features(records, 4)), records));
                    records++;
                    maxOpen = Math.max(maxOpen, SessionStats.open() - openBefore);
                }
            }
            h.endInput();
            List<Tuple3<Integer, String, float[]>> out = predictions(h);
            assertThat(out).hasSize(records);
            for (Tuple3<Integer, String, float[]> p : out) {
                assertThat(p.f1).isEqualTo("fraud-" + p.f0);
            }
            // every record: its own model's reference (records are matched by model and order within it)
            int[] seen = new int[20];
            List<float[]>[] byModel = expectedByModel(mlps, records);
            for (Tuple3<Integer, String, float[]> p : out) {
                float[] expected = byModel[p.f0].get(seen[p.f0]++);
                for (int k = 0; k < expected.length; k++) {
                    assertThat(p.f2[k]).isCloseTo(expected[k], within(1e-5f));
                }
            }
            assertThat(operator(h).evictions()).isGreaterThan(0);
            assertThat(operator(h).loadedModels()).isLessThanOrEqualTo(5);
        }
        assertThat(maxOpen).as("sessions open at once").isLessThanOrEqualTo(5);
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    /** Per model, the references of its records in the order they were sent. */
    @SuppressWarnings("unchecked")
    private static List<float[]>[] expectedByModel(List<TestModels.Mlp> mlps, int records) {
        List<float[]>[] byModel = new List[20];
        for (int i = 0; i < 20; i++) {
            byModel[i] = new ArrayList<>();
        }
        int k = 0;
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 20; i++) {
                int model = (i * 7 + round) % 20;
                byModel[model].add(mlps.get(model).reference(TestModels.features(k, 4)));
                k++;
            }
        }
        assertThat(k).isEqualTo(records);
        return byModel;
    }

    @Test
    void aBrokenModelDeadLettersOnlyItsOwnRecordsNamingItAndASelectorThatThrowsOnlyItsRecord() throws Exception {
        writeModels(4, 4, 8);
        byte[] bytes = Files.readAllBytes(model(2));
        Files.write(model(2), Arrays.copyOf(bytes, bytes.length / 3));
        ModelSelector<Tuple2<Integer, float[]>> selector = byIndex();
        ModelSelector<Tuple2<Integer, float[]>> throwing = r -> {
            if (r.f0 < 0) {
                throw new IllegalStateException("no model for a negative index");
            }
            return selector.select(r);
        };
        try (var h = open(throwing, ModelCache.builder().maxModels(4).build())) {
            for (int i = 0; i < 40; i++) {
                h.processElement(new StreamRecord<>(Tuple2.of(i % 4, TestModels.features(i, 4)), i));
            }
            h.processElement(new StreamRecord<>(Tuple2.of(-1, TestModels.features(0, 4)), 99));
            h.endInput();
            List<FailedRecord<Tuple2<Integer, float[]>>> failed = Harnesses.failed(h, RECORD);
            assertThat(failed).hasSize(11);
            assertThat(failed).filteredOn(f -> f.record.f0 == 2).hasSize(10).allSatisfy(f -> {
                assertThat(f.model).endsWith("fraud-2.onnx");
                assertThat(f.reason).contains("fraud-2").contains("failed to load");
            });
            assertThat(failed)
                    .filteredOn(f -> f.record.f0 == -1)
                    .singleElement()
                    .satisfies(f -> assertThat(f.reason).contains("model selector failed"));
            assertThat(predictions(h)).hasSize(30).allSatisfy(p -> assertThat(p.f0)
                    .isNotEqualTo(2));
        }
    }

    /**
     * A model whose session breaks after it scored (every run fails, and so does a record that scored on it
     * before: its session, not the data, is broken) is closed and marked failed after
     * {@code maxConsecutiveFailedBatches}; its records from then on are dead letters; the other models go on;
     * no record is lost.
     */
    @Test
    void aModelWhoseSessionBreaksCostsOnlyItsOwnRecordsAndLosesNone() throws Exception {
        writeModels(4, 4, 8);
        OnnxInferenceSpec<Tuple2<Integer, float[]>, Tuple3<Integer, String, float[]>> spec =
                OnnxInference.<Tuple2<Integer, float[]>>builder(model(0).toString())
                        .encoder((r, row) -> row.put("x", r.f1))
                        .decoder((r, out) -> Tuple3.of(r.f0, out.modelVersion(), out.floats("y")), SCORED)
                        .maxConsecutiveFailedBatches(2)
                        .build();
        MultiModelOperator<Tuple2<Integer, float[]>, Tuple3<Integer, String, float[]>> operator =
                new MultiModelOperator<>(
                        spec,
                        byIndex(),
                        BatchPolicy.builder()
                                .maxBatchSize(4)
                                .maxBatchDelay(Duration.ofMillis(5))
                                .build(),
                        ModelCache.builder().maxModels(4).build(),
                        FailedRecord.tag(RECORD));
        int openBefore = SessionStats.open();
        try (var h = new OneInputStreamOperatorTestHarness<>(operator)) {
            h.setProcessingTime(0);
            h.open();
            for (int i = 0; i < 40; i++) {
                h.processElement(new StreamRecord<>(Tuple2.of(i % 4, TestModels.features(i, 4)), i));
            }
            h.prepareSnapshotPreBarrier(1); // every buffer scored
            assertThat(predictions(h)).hasSize(40);
            // ORT's terminate flag makes every run of model 3 fail, as a lost device or a corrupted session would
            operator.runner(ModelRef.of(dir + "/fraud-3.onnx")).terminate();
            for (int i = 40; i < 80; i++) {
                h.processElement(new StreamRecord<>(Tuple2.of(i % 4, TestModels.features(i, 4)), i));
            }
            h.endInput();
            List<FailedRecord<Tuple2<Integer, float[]>>> failed = Harnesses.failed(h, RECORD);
            List<Tuple3<Integer, String, float[]>> scored = predictions(h);
            assertThat(scored.size() + failed.size())
                    .as("one outcome per record")
                    .isEqualTo(80);
            assertThat(scored).hasSize(70);
            assertThat(failed).hasSize(10).allSatisfy(f -> {
                assertThat(f.record.f0).isEqualTo(3);
                assertThat(f.model).endsWith("fraud-3.onnx");
            });
            // the two failed batches' records carry their runs' error; the records after them the model's state
            assertThat(failed)
                    .filteredOn(f -> f.reason.contains("is broken"))
                    .hasSize(2)
                    .allSatisfy(f -> assertThat(f.reason).contains("fraud-3"));
            assertThat(operator.runner(ModelRef.of(dir + "/fraud-3.onnx")))
                    .as("the broken model's session is closed")
                    .isNull();
            assertThat(operator.loadedModels()).isEqualTo(3);
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    /**
     * Per-model metrics (a counter and a histogram of ~10 KB per label, never removed) exist for the first
     * {@link MultiModelOperator#MODELS_WITH_METRICS} labels; the labels after them share the group
     * {@code model=other}. Here 1,005 versions of one model (one shared session), one record each, through
     * Flink's metric groups on a registry that records every registration.
     */
    @Test
    void perModelMetricsStopAtTheCapAndTheModelsPastItShareTheOtherGroup() throws Exception {
        writeModels(1, 4, 8);
        int labels = MultiModelOperator.MODELS_WITH_METRICS + 5;
        Map<String, Map<String, Metric>> byLabel = new ConcurrentHashMap<>();
        TestingMetricRegistry registry = TestingMetricRegistry.builder()
                .setRegisterConsumer((metric, name, group) -> {
                    String label = group.getAllVariables().get("<model>");
                    if (label != null) {
                        byLabel.computeIfAbsent(label, l -> new ConcurrentHashMap<>())
                                .put(name, metric);
                    }
                })
                .build();
        TaskMetricGroup task = TaskManagerMetricGroup.createTaskManagerMetricGroup(
                        registry, "localhost", ResourceID.generate())
                .addJob(new JobID(), "many-models")
                .addTask(ExecutionAttemptID.randomId(), "score");
        String uri = model(0).toString();
        ModelSelector<Tuple2<Integer, float[]>> byVersion =
                r -> ModelRef.of(uri).withVersion("v" + r.f0);
        OnnxInferenceSpec<Tuple2<Integer, float[]>, Tuple3<Integer, String, float[]>> spec =
                OnnxInference.<Tuple2<Integer, float[]>>builder(uri)
                        .encoder((r, row) -> row.put("x", r.f1))
                        .decoder((r, out) -> Tuple3.of(r.f0, out.modelVersion(), out.floats("y")), SCORED)
                        .build();
        var operator = new MultiModelOperator<>(
                spec,
                byVersion,
                BatchPolicy.builder().maxBatchSize(4).build(),
                ModelCache.defaults(),
                FailedRecord.tag(RECORD));
        try (MockEnvironment env = new MockEnvironmentBuilder()
                        .setTaskName("score")
                        .setManagedMemorySize(3 * 1024 * 1024)
                        .setInputSplitProvider(new MockInputSplitProvider())
                        .setBufferSize(1024)
                        .setMetricGroup(task)
                        .build();
                var h = new OneInputStreamOperatorTestHarness<>(operator, env)) {
            h.setProcessingTime(0);
            h.open();
            for (int i = 0; i < labels; i++) {
                h.processElement(new StreamRecord<>(Tuple2.of(i, TestModels.features(i, 4)), i));
            }
            h.endInput();
            assertThat(predictions(h)).hasSize(labels);
        }
        assertThat(byLabel).hasSize(MultiModelOperator.MODELS_WITH_METRICS + 1).containsKey("other");
        for (int i = 0; i < MultiModelOperator.MODELS_WITH_METRICS; i++) {
            assertThat(byLabel.get("v" + i))
                    .as("metrics of v%s", i)
                    .containsOnlyKeys(
                            "num_inferences",
                            "num_batches",
                            "failed_batches_counter",
                            "inference_request_batch_size",
                            "inference_batch_latency_micro_secs",
                            "queue_time_micro_secs");
            assertThat(((Counter) byLabel.get("v" + i).get("num_inferences")).getCount())
                    .isOne();
        }
        assertThat(byLabel).doesNotContainKey("v" + MultiModelOperator.MODELS_WITH_METRICS);
        assertThat(((Counter) byLabel.get("other").get("num_inferences")).getCount())
                .isEqualTo(5);
        assertThat(((Histogram) byLabel.get("other").get("inference_batch_latency_micro_secs")).getCount())
                .isEqualTo(5);
    }

    @Test
    void aCanarySplitSendsTheAskedShareOfKeysToTheChallengerAndTheSameKeysEveryTime() throws Exception {
        ModelRef champion = ModelRef.of("champion.onnx");
        ModelRef challenger = ModelRef.of("challenger.onnx");
        ModelSelector<String> split = ModelSelector.split(key -> key, champion, challenger, 0.05);
        int toChallenger = 0;
        for (int i = 0; i < 10_000; i++) {
            if (split.select("card-" + i).equals(challenger)) {
                toChallenger++;
            }
        }
        assertThat(toChallenger / 10_000.0).isCloseTo(0.05, within(0.01));
        // a fresh copy (as after a restart, on any subtask) puts every key on the same side
        ModelSelector<String> again =
                org.apache.flink.util.InstantiationUtil.clone(split, getClass().getClassLoader());
        for (int i = 0; i < 10_000; i++) {
            assertThat(again.select("card-" + i)).isEqualTo(split.select("card-" + i));
        }
    }

    /**
     * 20 models of ~2 MB, at most 5 loaded, cycled through 16 times (over 300 loads and evictions): no session
     * stays open and the process does not grow by more than a fraction of what one leaked session per load
     * would add (~560 MB after the warm-up).
     */
    @Test
    void cyclingThroughTheModelsManyTimesDoesNotGrowTheProcess() throws Exception {
        List<TestModels.Mlp> mlps = writeModels(20, 128, 4096);
        int openBefore = SessionStats.open();
        long rssAfterWarmUp = 0;
        try (var h = open(byIndex(), ModelCache.builder().maxModels(5).build())) {
            int n = 0;
            for (int round = 0; round < 16; round++) {
                for (int i = 0; i < 20; i++) {
                    h.processElement(new StreamRecord<>(Tuple2.of(i, TestModels.features(n, 128)), n));
                    n++;
                }
                h.endInput(); // scores all buffers (and waits for loads) like a barrier would
                h.getOutput().clear();
                if (round == 1) {
                    rssAfterWarmUp = ProcessMemory.residentOutsideHeapBytes();
                }
            }
            assertThat(operator(h).evictions()).isGreaterThanOrEqualTo(16 * 20 - 5);
            long growth = ProcessMemory.residentOutsideHeapBytes() - rssAfterWarmUp;
            if (ProcessMemory.measurable()) { // Linux, where CI runs
                // one leaked session per load would be ~2 MB x 280 loads; measured: 20 to 65 MB of allocator and
                // heap drift, whatever the model size
                assertThat(growth).as("RSS growth over 14 cycles").isLessThan(150L << 20);
            }
            assertThat(mlps).hasSize(20);
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }
}
