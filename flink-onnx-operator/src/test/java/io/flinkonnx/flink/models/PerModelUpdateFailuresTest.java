package io.flinkonnx.flink.models;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.streaming.api.graph.StreamConfig;
import org.apache.flink.streaming.api.operators.Output;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.LatencyMarker;
import org.apache.flink.streaming.runtime.streamrecord.RecordAttributes;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.tasks.StreamTask;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.TwoInputStreamOperatorTestHarness;
import org.apache.flink.util.OutputTag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Failure paths of per-model updates in the many-model operator: a swap that fails closes the new version, a
 * control message for a model not loaded is gated at its load, a model whose stored version no longer loads falls
 * back to its folder's newest, and a rollback is not undone by the next poll.
 */
class PerModelUpdateFailuresTest {
    /** (model index: 0 is folder a, 1 folder b; features). */
    private static final TypeInformation<Tuple2<Integer, float[]>> RECORD =
            Types.TUPLE(Types.INT, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    /** (model index, model URI, version, y). */
    private static final TypeInformation<Tuple4<Integer, String, String, float[]>> SCORED =
            Types.TUPLE(Types.INT, Types.STRING, Types.STRING, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);

    private static final long POLL_MILLIS = 60_000;
    private static final TestModels.Mlp A1 = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp A2 = new TestModels.Mlp(4, 8, 2, 2);
    private static final TestModels.Mlp A3 = new TestModels.Mlp(4, 8, 2, 3);
    private static final TestModels.Mlp A4 = new TestModels.Mlp(4, 8, 2, 4);
    private static final TestModels.Mlp B1 = new TestModels.Mlp(4, 8, 2, 11);

    @TempDir
    Path dir;

    private long now;
    private int sent;

    private Path folder(String name) {
        return dir.resolve(name);
    }

    private Path publish(String folder, TestModels.Mlp mlp, String version) throws IOException {
        return mlp.writeTo(
                Files.createDirectories(folder(folder).resolve(version)).resolve("model.onnx"));
    }

    private ModelSelector<Tuple2<Integer, float[]>> selector() {
        String a = folder("a").toString();
        String b = folder("b").toString();
        return r -> ModelRef.watch(r.f0 == 0 ? a : b);
    }

    private OnnxInferenceSpec<Tuple2<Integer, float[]>, Tuple4<Integer, String, String, float[]>> spec() {
        return spec(folder("a").resolve("v1/model.onnx"), 3);
    }

    private static OnnxInferenceSpec<Tuple2<Integer, float[]>, Tuple4<Integer, String, String, float[]>> spec(
            Path model, int maxConsecutiveFailedBatches) {
        return OnnxInference.<Tuple2<Integer, float[]>>builder(model.toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> Tuple4.of(r.f0, out.modelUri(), out.modelVersion(), out.floats("y")), SCORED)
                .maxConsecutiveFailedBatches(maxConsecutiveFailedBatches)
                .build();
    }

    private static BatchPolicy policy(Duration delay) {
        return BatchPolicy.builder().maxBatchSize(4).maxBatchDelay(delay).build();
    }

    private static ModelUpdates updates() {
        return ModelUpdates.builder()
                .pollInterval(Duration.ofMillis(POLL_MILLIS))
                .build();
    }

    /** Waits for the loader thread (real ORT loads), then fires the operator's check timer: loads and swaps land. */
    private void settle(AbstractStreamOperatorTestHarness<?> h) throws Exception {
        ((MultiModelOperator<?, ?>) h.getOperator()).awaitLoader(Duration.ofSeconds(60));
        now += 20;
        h.setProcessingTime(now);
    }

    /** The next poll of the watched folders, and the loads of what it finds. */
    private void poll(AbstractStreamOperatorTestHarness<?> h) throws Exception {
        now += POLL_MILLIS;
        h.setProcessingTime(now);
        settle(h);
    }

    /** Sends one record of {@code model} to a controlled operator and returns what it emitted after its load. */
    private List<Tuple4<Integer, String, String, float[]>> score(
            TwoInputStreamOperatorTestHarness<
                            Tuple2<Integer, float[]>, ModelUpdate, Tuple4<Integer, String, String, float[]>>
                    h,
            int model)
            throws Exception {
        h.getOutput().clear();
        h.processElement1(new StreamRecord<>(Tuple2.of(model, TestModels.features(sent++, 4)), sent));
        settle(h);
        // a second look: a load the first check found done may have started an update
        settle(h);
        return predictions(h);
    }

    /** The prediction equals the reference of {@code mlp}. */
    private static void assertScoredBy(Tuple4<Integer, String, String, float[]> p, int record, TestModels.Mlp mlp) {
        float[] expected = mlp.reference(TestModels.features(record, 4));
        for (int k = 0; k < expected.length; k++) {
            assertThat(p.f3[k]).as("%s of model %s", p.f2, p.f0).isCloseTo(expected[k], within(1e-5f));
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Tuple4<Integer, String, String, float[]>> predictions(AbstractStreamOperatorTestHarness<?> h) {
        List<Tuple4<Integer, String, String, float[]>> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord) {
                out.add(((StreamRecord<Tuple4<Integer, String, String, float[]>>) o).getValue());
            }
        }
        return out;
    }

    private static List<ModelUpdateReport> reports(AbstractStreamOperatorTestHarness<?> h) {
        List<ModelUpdateReport> reports = new ArrayList<>();
        var queue = h.getSideOutput(ModelUpdateReport.TAG);
        if (queue != null) {
            queue.forEach(r -> reports.add(r.getValue()));
        }
        return reports;
    }

    private static void clearReports(AbstractStreamOperatorTestHarness<?> h) {
        var queue = h.getSideOutput(ModelUpdateReport.TAG);
        if (queue != null) {
            queue.clear();
        }
    }

    private static List<FailedRecord<Tuple2<Integer, float[]>>> deadLetters(AbstractStreamOperatorTestHarness<?> h) {
        List<FailedRecord<Tuple2<Integer, float[]>>> out = new ArrayList<>();
        var queue = h.getSideOutput(FailedRecord.tag(RECORD));
        if (queue != null) {
            queue.forEach(r -> out.add(r.getValue()));
        }
        return out;
    }

    private TwoInputStreamOperatorTestHarness<
                    Tuple2<Integer, float[]>, ModelUpdate, Tuple4<Integer, String, String, float[]>>
            controlled(ModelCache cache) throws Exception {
        var h = new TwoInputStreamOperatorTestHarness<>(new ControlledMultiModelOperator<>(
                spec(), selector(), policy(Duration.ZERO), cache, FailedRecord.tag(RECORD), updates()));
        h.setProcessingTime(now);
        h.open();
        return h;
    }

    /** A many-model operator whose downstream throws while {@link #broken} (side outputs pass). */
    static final class BrokenDownstream<IN, OUT> extends MultiModelOperator<IN, OUT> {
        private static final long serialVersionUID = 1L;
        transient boolean broken;

        BrokenDownstream(
                OnnxInferenceSpec<IN, OUT> spec,
                ModelSelector<IN> selector,
                BatchPolicy policy,
                ModelCache cache,
                OutputTag<FailedRecord<IN>> failedTag,
                ModelUpdates updates) {
            super(spec, selector, policy, cache, failedTag, updates);
        }

        @Override
        protected void setup(StreamTask<?, ?> task, StreamConfig config, Output<StreamRecord<OUT>> output) {
            super.setup(task, config, new Output<>() {
                @Override
                public void collect(StreamRecord<OUT> record) {
                    if (broken) {
                        throw new IllegalStateException("downstream broke");
                    }
                    output.collect(record);
                }

                @Override
                public <X> void collect(OutputTag<X> tag, StreamRecord<X> record) {
                    output.collect(tag, record);
                }

                @Override
                public void emitWatermark(Watermark mark) {
                    output.emitWatermark(mark);
                }

                @Override
                public void emitWatermarkStatus(WatermarkStatus status) {
                    output.emitWatermarkStatus(status);
                }

                @Override
                public void emitLatencyMarker(LatencyMarker marker) {
                    output.emitLatencyMarker(marker);
                }

                @Override
                public void emitRecordAttributes(RecordAttributes attributes) {
                    output.emitRecordAttributes(attributes);
                }

                @Override
                public void emitWatermark(org.apache.flink.runtime.event.WatermarkEvent event) {
                    output.emitWatermark(event);
                }

                @Override
                public void close() {
                    output.close();
                }
            });
        }
    }

    @Test
    void aSwapThatFailsClosesTheNewVersion() throws Exception {
        publish("a", A1, "v1");
        int openBefore = SessionStats.open();
        var operator = new BrokenDownstream<>(
                spec(),
                selector(),
                policy(Duration.ofHours(1)),
                ModelCache.defaults(),
                FailedRecord.tag(RECORD),
                updates());
        try (var h = new OneInputStreamOperatorTestHarness<>(operator)) {
            h.setProcessingTime(now);
            h.open();
            h.processElement(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            settle(h); // v1 loads; the record waits in its buffer (the batch delay is long)
            assertThat(SessionStats.open() - openBefore).isEqualTo(1);

            publish("a", A2, "v2");
            operator.broken = true;
            now += POLL_MILLIS;
            h.setProcessingTime(now); // the poll finds v2 and loads it
            operator.awaitLoader(Duration.ofSeconds(60));
            assertThat(SessionStats.open() - openBefore).isEqualTo(2);
            now += 20;
            long at = now;
            // the buffer is scored by v1 before the swap: its prediction breaks the task
            assertThatThrownBy(() -> h.setProcessingTime(at)).hasStackTraceContaining("downstream broke");
            operator.broken = false;
        }
        assertThat(SessionStats.open()).as("v2's session is closed too").isEqualTo(openBefore);
    }

    @Test
    void aControlMessageForAModelNotLoadedHereIsGatedAtItsLoad() throws Exception {
        publish("a", A1, "v1");
        publish("b", B1, "v1");
        Path wide = new TestModels.Mlp(5, 8, 2, 3).writeTo(dir.resolve("elsewhere/wide.onnx"));
        try (var h = controlled(ModelCache.builder().maxModels(1).build())) {
            assertThat(score(h, 0)).singleElement().satisfies(p -> assertScoredBy(p, sent - 1, A1));

            // b not seen yet on this subtask: a message of another signature for it
            h.processElement2(new StreamRecord<>(
                    ModelUpdate.of(wide.toString(), "wide").forModel(folder("b").toString())));
            List<Tuple4<Integer, String, String, float[]>> out = score(h, 1);
            assertThat(reports(h)).singleElement().satisfies(r -> {
                assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.REFUSED);
                assertThat(r.model).isEqualTo(folder("b").toString());
                assertThat(r.version).isEqualTo("wide");
                assertThat(r.servingVersion).isEqualTo("v1");
                assertThat(r.reason).contains("signature differs");
            });
            assertThat(out).singleElement().satisfies(p -> {
                assertThat(p.f2).isEqualTo("v1");
                assertScoredBy(p, sent - 1, B1);
            });

            // b evicted by a's record, then the same message again: refused at b's next load, v1 serves on
            score(h, 0);
            clearReports(h);
            h.processElement2(new StreamRecord<>(
                    ModelUpdate.of(wide.toString(), "wide").forModel(folder("b").toString())));
            out = score(h, 1);
            assertThat(reports(h))
                    .extracting(r -> r.outcome + " " + r.model + " " + r.version)
                    .containsExactly("REFUSED " + folder("b") + " wide");
            assertThat(out).singleElement().satisfies(p -> {
                assertThat(p.f2).isEqualTo("v1");
                assertScoredBy(p, sent - 1, B1);
            });
            assertThat(deadLetters(h)).isEmpty();
        }
    }

    @Test
    void aWatchedModelWhoseVersionIsGoneLoadsItsFoldersNewest() throws Exception {
        publish("a", A3, "v3");
        publish("b", B1, "v1");
        try (var h = controlled(ModelCache.builder().maxModels(1).build())) {
            assertThat(score(h, 0)).singleElement().satisfies(p -> assertThat(p.f2)
                    .isEqualTo("v3"));
            score(h, 1); // a is evicted
            deleteRecursively(folder("a").resolve("v3"));
            publish("a", A4, "v4");
            clearReports(h);

            List<Tuple4<Integer, String, String, float[]>> out = score(h, 0);
            assertThat(out).singleElement().satisfies(p -> {
                assertThat(p.f2).isEqualTo("v4");
                assertScoredBy(p, sent - 1, A4);
            });
            assertThat(deadLetters(h)).isEmpty();
            assertThat(reports(h)).singleElement().satisfies(r -> {
                assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.PROMOTED);
                assertThat(r.model).isEqualTo(folder("a").toString());
                assertThat(r.version).isEqualTo("v4");
                assertThat(r.reason).contains("v3").contains("did not load");
            });
        }
    }

    private static void deleteRecursively(Path path) throws IOException {
        try (var files = Files.walk(path)) {
            for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    @Test
    void aRollbackIsNotUndoneByTheNextPoll() throws Exception {
        Path a1 = publish("a", A1, "v1");
        publish("a", A2, "v2");
        try (var h = controlled(ModelCache.defaults())) {
            assertThat(score(h, 0)).singleElement().satisfies(p -> assertThat(p.f2)
                    .isEqualTo("v2"));
            publish("a", A3, "v3"); // not polled yet

            h.processElement2(new StreamRecord<>(
                    ModelUpdate.of(a1.toString(), "v1").forModel(folder("a").toString())));
            settle(h);
            assertThat(reports(h)).extracting(r -> r.outcome + " " + r.version).containsExactly("PROMOTED v1");

            poll(h);
            assertThat(score(h, 0)).singleElement().satisfies(p -> {
                assertThat(p.f2).as("the rollback stands").isEqualTo("v1");
                assertScoredBy(p, sent - 1, A1);
            });

            publish("a", A4, "v4"); // newer than what the folder held at the rollback: it replaces the pin
            poll(h);
            assertThat(score(h, 0)).singleElement().satisfies(p -> {
                assertThat(p.f2).isEqualTo("v4");
                assertScoredBy(p, sent - 1, A4);
            });
        }
    }

    @Test
    void aSwapToABiggerVersionEvictsOtherModelsPastTheByteBound() throws Exception {
        publish("a", A1, "v1");
        publish("b", B1, "v1");
        TestModels.Mlp big = new TestModels.Mlp(4, 1 << 20, 2, 5); // 28 MB of weights, the same signature
        // The byte bound weighs what each session measured (resident memory), learnt once per model in the
        // process: learn the three first, then bound the cache between "a and b" and "a's big version and b".
        long small;
        long bigger;
        long other;
        try (var h = controlled(ModelCache.defaults())) {
            MultiModelOperator<?, ?> operator = (MultiModelOperator<?, ?>) h.getOperator();
            score(h, 0);
            score(h, 1);
            small = operator.runner(refOf("a")).session().residentBytes();
            other = operator.runner(refOf("b")).session().residentBytes();
            publish("a", big, "v2");
            poll(h);
            assertThat(score(h, 0)).singleElement().satisfies(p -> assertThat(p.f2)
                    .isEqualTo("v2"));
            bigger = operator.runner(refOf("a")).session().residentBytes();
        }
        assertThat(bigger).as("the big version weighs more").isGreaterThan(small);
        deleteRecursively(folder("a").resolve("v2"));
        long bound = small + other + (bigger - small) / 2;
        try (var h = controlled(
                ModelCache.builder().maxModels(4).maxModelBytes(bound).build())) {
            MultiModelOperator<?, ?> operator = (MultiModelOperator<?, ?>) h.getOperator();
            score(h, 0);
            score(h, 1);
            assertThat(operator.loadedModels()).isEqualTo(2);

            publish("a", big, "v2");
            poll(h);
            assertThat(reports(h)).extracting(r -> r.outcome + " " + r.version).contains("PROMOTED v2");
            assertThat(operator.loadedModels()).as("b is evicted at a's swap").isEqualTo(1);
            assertThat(operator.evictions()).isEqualTo(1);
            assertThat(score(h, 0)).singleElement().satisfies(p -> assertThat(p.f2)
                    .isEqualTo("v2"));
        }
    }

    private ModelRef refOf(String folder) {
        return ModelRef.watch(folder(folder).toString());
    }

    @Test
    void aVersionWhoseSwapFindsTheSessionBrokenIsNotReportedPromotedUntilItServes() throws Exception {
        Path a1 = publish("a", A1, "v1");
        int openBefore = SessionStats.open();
        var operator = new ControlledMultiModelOperator<>(
                spec(a1, 1),
                selector(),
                policy(Duration.ofHours(1)),
                ModelCache.builder().retryBackoff(Duration.ofMillis(100)).build(),
                FailedRecord.tag(RECORD),
                updates());
        try (var h = new TwoInputStreamOperatorTestHarness<>(operator)) {
            h.setProcessingTime(now);
            h.open();
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            settle(h); // v1 loads; the record waits in its buffer (the batch delay is long)
            clearReports(h);

            publish("a", A2, "v2");
            now += POLL_MILLIS;
            h.setProcessingTime(now); // the poll finds v2 and loads it
            operator.awaitLoader(Duration.ofSeconds(60));
            operator.runner(ModelRef.watch(folder("a").toString())).terminate(); // v1's next run fails
            settle(h); // the swap drains the buffer with v1, whose session is broken
            assertThat(deadLetters(h)).as("the record v1 failed").hasSize(1);
            assertThat(operator.runner(ModelRef.watch(folder("a").toString())))
                    .as("the broken session is closed")
                    .isNull();
            assertThat(reports(h)).as("v2 does not serve yet").isEmpty();
            assertThat(SessionStats.open()).as("both sessions are closed").isEqualTo(openBefore);

            now += 200; // past the backoff: the next record loads the model again, and the next poll takes v2
            h.setProcessingTime(now);
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            settle(h);
            poll(h); // the record buffered is scored by v1, then v2 serves
            assertThat(reports(h)).extracting(r -> r.outcome + " " + r.version).containsExactly("PROMOTED v2");
            h.getOutput().clear();
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            h.prepareSnapshotPreBarrier(1);
            assertThat(predictions(h)).singleElement().satisfies(p -> {
                assertThat(p.f2).isEqualTo("v2");
                assertScoredBy(p, sent - 1, A2);
            });
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    @Test
    void aPollProblemThatComesBackAfterTheFolderReadWellIsReportedAgain() throws Exception {
        publish("a", A1, "v1");
        Path away = dir.resolve("away");
        try (var h = controlled(ModelCache.defaults())) {
            score(h, 0);
            clearReports(h);
            Files.move(folder("a"), away);
            poll(h);
            poll(h); // the same problem: reported once
            assertThat(reports(h)).singleElement().satisfies(r -> {
                assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.REFUSED);
                assertThat(r.reason).contains("Cannot read the watched model folder");
            });

            Files.move(away, folder("a"));
            poll(h); // reads well: nothing new
            Files.move(folder("a"), away);
            poll(h);
            assertThat(reports(h)).hasSize(2).allSatisfy(r -> assertThat(r.reason)
                    .contains("Cannot read the watched model folder"));
        }
    }

    @Test
    void twoWatchedFoldersOfOneNameHaveMetricsOfTheirOwn() throws Exception {
        Path x = Files.createDirectories(dir.resolve("x/fraud"));
        Path y = Files.createDirectories(dir.resolve("y/fraud"));
        Path x1 = A1.writeTo(Files.createDirectories(x.resolve("v1")).resolve("model.onnx"));
        B1.writeTo(Files.createDirectories(y.resolve("v1")).resolve("model.onnx"));
        var operator = new MultiModelOperator<>(
                spec(x1, 3),
                r -> ModelRef.watch((r.f0 == 0 ? x : y).toString()),
                policy(Duration.ZERO),
                ModelCache.defaults(),
                FailedRecord.tag(RECORD),
                updates());
        try (var h = new OneInputStreamOperatorTestHarness<>(operator)) {
            h.setProcessingTime(now);
            h.open();
            h.processElement(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            h.processElement(new StreamRecord<>(Tuple2.of(1, TestModels.features(sent++, 4)), sent));
            h.processElement(new StreamRecord<>(Tuple2.of(1, TestModels.features(sent++, 4)), sent));
            settle(h);
            assertThat(predictions(h)).hasSize(3);
            assertThat(operator.batchMetrics("fraud").inferences()).isEqualTo(1);
            assertThat(operator.batchMetrics("y/fraud").inferences()).isEqualTo(2);
        }
    }
}
