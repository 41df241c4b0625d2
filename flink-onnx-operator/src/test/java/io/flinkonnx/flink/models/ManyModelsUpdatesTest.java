package io.flinkonnx.flink.models;

import static org.assertj.core.api.Assertions.assertThat;
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
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.TwoInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Updates of many models in one operator ({@code OnnxInference.batchedPerModel} with {@link ModelRef#watch} refs
 * and a control stream), in Flink's operator harness (processing time is the test's): a newer version in one
 * model's folder swaps that model only, each prediction names its model and version and equals that version's
 * reference, a version of another signature is refused with the reason, a restore serves the version the checkpoint
 * names, and a control message pins the model it addresses.
 */
class ManyModelsUpdatesTest {
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
    private static final TestModels.Mlp B1 = new TestModels.Mlp(4, 8, 2, 11);
    private static final TestModels.Mlp B2 = new TestModels.Mlp(4, 8, 2, 12);

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
        return OnnxInference.<Tuple2<Integer, float[]>>builder(
                        folder("a").resolve("v1/model.onnx").toString())
                .encoder((r, row) -> row.put("x", r.f1))
                .decoder((r, out) -> Tuple4.of(r.f0, out.modelUri(), out.modelVersion(), out.floats("y")), SCORED)
                .build();
    }

    private static BatchPolicy policy() {
        return BatchPolicy.builder()
                .maxBatchSize(4)
                .maxBatchDelay(Duration.ZERO)
                .build();
    }

    private static ModelUpdates updates() {
        return ModelUpdates.builder()
                .pollInterval(Duration.ofMillis(POLL_MILLIS))
                .build();
    }

    private OneInputStreamOperatorTestHarness<Tuple2<Integer, float[]>, Tuple4<Integer, String, String, float[]>> open(
            OperatorSubtaskState restoreFrom) throws Exception {
        var operator = new MultiModelOperator<>(
                spec(), selector(), policy(), ModelCache.defaults(), FailedRecord.tag(RECORD), updates());
        var h = new OneInputStreamOperatorTestHarness<>(operator);
        h.setProcessingTime(now);
        if (restoreFrom != null) {
            h.initializeState(restoreFrom);
        }
        h.open();
        return h;
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

    /** Scores one record of {@code model} (its load first, if it is not loaded) and returns its prediction. */
    private Tuple4<Integer, String, String, float[]> score(
            OneInputStreamOperatorTestHarness<Tuple2<Integer, float[]>, Tuple4<Integer, String, String, float[]>> h,
            int model)
            throws Exception {
        h.getOutput().clear();
        h.processElement(new StreamRecord<>(Tuple2.of(model, TestModels.features(sent++, 4)), sent));
        settle(h);
        List<Tuple4<Integer, String, String, float[]>> out = predictions(h);
        assertThat(out).hasSize(1);
        return out.get(0);
    }

    /** The prediction equals the reference of the version it names. */
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

    @Test
    void aNewerVersionInOneModelsFolderSwapsThatModelOnlyAndARestoreServesTheSwappedVersion() throws Exception {
        publish("a", A1, "v1");
        publish("b", B1, "v1");
        int openBefore = SessionStats.open();
        OperatorSubtaskState snapshot;
        try (var h = open(null)) {
            Tuple4<Integer, String, String, float[]> a = score(h, 0);
            assertThat(a.f2).isEqualTo("v1");
            assertThat(a.f1)
                    .endsWith(folder("a").resolve("v1/model.onnx").toString()); // the folder listing's file: URI
            assertScoredBy(a, sent - 1, A1);
            Tuple4<Integer, String, String, float[]> b = score(h, 1);
            assertThat(b.f2).isEqualTo("v1");
            assertScoredBy(b, sent - 1, B1);

            publish("a", A2, "v2");
            h.processElement(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent)); // by v1
            poll(h);
            List<ModelUpdateReport> reports = reports(h);
            assertThat(reports).singleElement().satisfies(r -> {
                assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.PROMOTED);
                assertThat(r.model).isEqualTo(folder("a").toString());
                assertThat(r.version).isEqualTo("v2");
                assertThat(r.servingVersion).isEqualTo("v2");
            });
            MultiModelOperator<?, ?> operator = (MultiModelOperator<?, ?>) h.getOperator();
            assertThat(operator.updatesPromoted())
                    .as("model_updates counts the swap")
                    .isOne();
            assertThat(operator.updatesRefused()).isZero();

            a = score(h, 0);
            assertThat(a.f2).isEqualTo("v2");
            assertThat(a.f1).endsWith(folder("a").resolve("v2/model.onnx").toString());
            assertScoredBy(a, sent - 1, A2);
            b = score(h, 1);
            assertThat(b.f2).as("the other model is not swapped").isEqualTo("v1");
            assertScoredBy(b, sent - 1, B1);
            assertThat(SessionStats.open() - openBefore)
                    .as("a's previous version is closed")
                    .isEqualTo(2);

            snapshot = h.snapshot(1, now);
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);

        // a newer version appears after the checkpoint: the restore serves v2 first, the next poll takes v3
        publish("a", A3, "v3");
        publish("b", B2, "v2");
        try (var h = open(snapshot)) {
            Tuple4<Integer, String, String, float[]> a = score(h, 0);
            assertThat(a.f2).as("the version the checkpoint names").isEqualTo("v2");
            assertScoredBy(a, sent - 1, A2);
            Tuple4<Integer, String, String, float[]> b = score(h, 1);
            assertThat(b.f2).isEqualTo("v1");
            assertScoredBy(b, sent - 1, B1);
            assertThat(reports(h))
                    .extracting(r -> r.outcome + " " + r.version)
                    .containsExactly("RESTORED v2", "RESTORED v1");

            poll(h);
            assertThat(score(h, 0).f2).isEqualTo("v3");
            assertScoredBy(predictions(h).get(0), sent - 1, A3);
            assertThat(score(h, 1).f2).isEqualTo("v2");
            assertScoredBy(predictions(h).get(0), sent - 1, B2);
        }
        assertThat(SessionStats.open()).isEqualTo(openBefore);
    }

    @Test
    void aVersionOfAnotherSignatureIsRefusedWithTheReasonAndTheModelServesOn() throws Exception {
        publish("a", A1, "v1");
        publish("b", B1, "v1");
        try (var h = open(null)) {
            score(h, 0);
            score(h, 1);
            new TestModels.Mlp(5, 8, 2, 3)
                    .writeTo(Files.createDirectories(folder("a").resolve("v2")).resolve("model.onnx"));
            poll(h);
            assertThat(reports(h)).singleElement().satisfies(r -> {
                assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.REFUSED);
                assertThat(r.model).isEqualTo(folder("a").toString());
                assertThat(r.version).isEqualTo("v2");
                assertThat(r.servingVersion).isEqualTo("v1");
                assertThat(r.reason).contains("signature differs");
            });
            Tuple4<Integer, String, String, float[]> a = score(h, 0);
            assertThat(a.f2).isEqualTo("v1");
            assertScoredBy(a, sent - 1, A1);

            poll(h); // the refused version is not tried again until its file changes
            assertThat(reports(h)).hasSize(1);
            MultiModelOperator<?, ?> operator = (MultiModelOperator<?, ?>) h.getOperator();
            assertThat(operator.updatesRefused())
                    .as("model_updates_refused counts it once")
                    .isOne();
            assertThat(operator.updatesPromoted()).isZero();
        }
    }

    @Test
    void aControlMessagePinsTheModelItNamesAndAModelNotSeenYetStartsWithIt() throws Exception {
        publish("a", A1, "v1");
        Path a2 = publish("a", A2, "v2");
        publish("b", B1, "v1");
        Path b2 = B2.writeTo(dir.resolve("elsewhere/b2.onnx"));
        var operator = new ControlledMultiModelOperator<>(
                spec(), selector(), policy(), ModelCache.defaults(), FailedRecord.tag(RECORD), updates());
        OperatorSubtaskState snapshot;
        try (var h = new TwoInputStreamOperatorTestHarness<>(operator)) {
            h.setProcessingTime(now);
            h.open();
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            settle(h);
            assertThat(predictions(h)).singleElement().satisfies(p -> assertThat(p.f2)
                    .isEqualTo("v2"));

            // a rollback of a, addressed by its folder; b is not loaded yet: it will start with its pinned version
            h.processElement2(new StreamRecord<>(
                    ModelUpdate.of(folder("a").resolve("v1/model.onnx").toString(), "v1")
                            .forModel(folder("a").toString())));
            h.processElement2(new StreamRecord<>(ModelUpdate.of(b2.toString(), "b-pinned")
                    .forModel(folder("b").toString())));
            h.processElement2(new StreamRecord<>(ModelUpdate.of(b2.toString(), "x"))); // names no model
            settle(h);
            assertThat(reports(h))
                    .extracting(r -> r.outcome + " " + r.model + " " + r.version)
                    .containsExactly("REFUSED null x", "PROMOTED " + folder("a") + " v1");

            h.getOutput().clear();
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            h.processElement1(new StreamRecord<>(Tuple2.of(1, TestModels.features(sent++, 4)), sent));
            settle(h);
            List<Tuple4<Integer, String, String, float[]>> out = predictions(h);
            assertThat(out).extracting(p -> p.f2).containsExactly("v1", "b-pinned");
            assertScoredBy(out.get(0), sent - 2, A1);
            assertScoredBy(out.get(1), sent - 1, B2);

            poll(h); // v2 was handled already: the rollback stands until a newer version appears
            h.getOutput().clear();
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            settle(h);
            assertThat(predictions(h)).singleElement().satisfies(p -> assertThat(p.f2)
                    .isEqualTo("v1"));
            snapshot = h.snapshot(1, now);
        }
        try (var h = new TwoInputStreamOperatorTestHarness<>(new ControlledMultiModelOperator<>(
                spec(), selector(), policy(), ModelCache.defaults(), FailedRecord.tag(RECORD), updates()))) {
            h.setProcessingTime(now);
            h.initializeState(snapshot);
            h.open();
            h.processElement1(new StreamRecord<>(Tuple2.of(0, TestModels.features(sent++, 4)), sent));
            h.processElement1(new StreamRecord<>(Tuple2.of(1, TestModels.features(sent++, 4)), sent));
            settle(h);
            assertThat(predictions(h))
                    .as("after a restore the pins stand, not the folders' newest")
                    .extracting(p -> p.f2)
                    .containsExactly("v1", "b-pinned");
            poll(h);
            assertThat(reports(h)).extracting(r -> r.outcome).containsOnly(ModelUpdateReport.Outcome.RESTORED);
        }
        assertThat(a2).exists();
    }
}
