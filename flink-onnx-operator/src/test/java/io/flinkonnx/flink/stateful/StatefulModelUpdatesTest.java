package io.flinkonnx.flink.stateful;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.StatefulModels;
import io.flinkonnx.flink.stateful.StatefulInferenceTest.Event;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A stateful model served from a watched folder: a new version takes over between batches and every key's state
 * carries over to it; a version whose states differ is refused by the gate with the reason, and the serving
 * version scores on with every key's state. References: plain ORT, one key at a time, switching sessions where
 * the operator swapped.
 */
class StatefulModelUpdatesTest {
    private static final int KEYS = 20;
    private static final long SAMPLE_RATE = 8000L;
    private static final TypeInformation<Event> EVENT = TypeInformation.of(Event.class);
    /** (key, seq, version, y). */
    private static final TypeInformation<Tuple4<Integer, Integer, String, float[]>> SCORED =
            Types.TUPLE(Types.INT, Types.INT, Types.STRING, Types.PRIMITIVE_ARRAY(Types.FLOAT));

    @TempDir
    Path dir;

    private KeyedOneInputStreamOperatorTestHarness<Integer, Event, Tuple4<Integer, Integer, String, float[]>> harness;

    @AfterEach
    void close() throws Exception {
        if (harness != null) {
            harness.close();
        }
    }

    /** A version whose output head keeps {@code y}'s shape whatever its state's size. */
    private Path publishWithHead(Path folder, String version, int hidden, int seed) throws Exception {
        return StatefulModels.writeGruWithHead(
                Files.createDirectories(folder.resolve(version)).resolve("model.onnx"), hidden, seed);
    }

    private Path publish(Path folder, String version, int hidden, int seed) throws Exception {
        return StatefulModels.writeGruWithConstant(
                Files.createDirectories(folder.resolve(version)).resolve("model.onnx"), hidden, seed);
    }

    private StatefulInferenceOperator<Event, Tuple4<Integer, Integer, String, float[]>> open(Path folder, Path v1)
            throws Exception {
        return open(v1, ModelUpdates.watch(folder.toString(), Duration.ofMillis(100)));
    }

    private StatefulInferenceOperator<Event, Tuple4<Integer, Integer, String, float[]>> open(
            Path v1, ModelUpdates updates) throws Exception {
        OnnxInferenceSpec<Event, Tuple4<Integer, Integer, String, float[]>> spec = OnnxInference.<Event>builder(
                        v1.toString())
                .encoder((e, row) -> row.put("x", e.x))
                .decoder((e, out) -> Tuple4.of(e.key, e.seq, out.modelVersion(), out.floats("y")), SCORED)
                .build();
        var operator = new StatefulInferenceOperator<>(
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(8)
                        .maxBatchDelay(Duration.ofSeconds(10))
                        .build(),
                RecurrentState.<Event>builder()
                        .state("state", "stateN", 1)
                        .constant("sr", SAMPLE_RATE)
                        .build(),
                FailedRecord.tag(EVENT),
                updates);
        harness = new KeyedOneInputStreamOperatorTestHarness<>(
                operator, (KeySelector<Event, Integer>) e -> e.key, Types.INT);
        harness.setProcessingTime(0);
        harness.open();
        awaitAndApply(operator, 50); // the first poll finds the version serving already
        return operator;
    }

    /** Waits for the loads under way, then lets processing time reach {@code time}, where they are applied. */
    private void awaitAndApply(StatefulInferenceOperator<Event, ?> operator, long time) throws Exception {
        assertThat(operator.versions().awaitLoaded(Duration.ofSeconds(60))).isTrue();
        harness.setProcessingTime(time);
    }

    private static List<Event> events(int count, int firstSeq, long seed) {
        Random random = new Random(seed);
        List<Event> events = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            float[] x = new float[StatefulModels.FEATURES];
            for (int k = 0; k < x.length; k++) {
                x[k] = random.nextFloat() * 2 - 1;
            }
            Event e = new Event();
            e.key = i % KEYS;
            e.seq = firstSeq + i / KEYS;
            e.x = x;
            events.add(e);
        }
        return events;
    }

    private void feed(List<Event> events) throws Exception {
        for (Event e : events) {
            harness.processElement(new StreamRecord<>(e, e.seq));
        }
    }

    private List<ModelUpdateReport> reports() {
        List<ModelUpdateReport> reports = new ArrayList<>();
        var out = harness.getSideOutput(ModelUpdateReport.TAG);
        if (out != null) {
            out.forEach(r -> reports.add(r.getValue()));
        }
        return reports;
    }

    @Test
    void aNewVersionTakesOverBetweenBatchesAndEveryKeyContinuesFromTheStateTheOldVersionLeft() throws Exception {
        Path folder = dir.resolve("vad");
        Path v1 = publish(folder, "v1", StatefulModels.HIDDEN, 31);
        var operator = open(folder, v1);
        List<Event> before = events(100, 0, 1); // 5 records per key; 100 is not a multiple of 8: some stay buffered
        feed(before);

        Path v2 = publish(folder, "v2", StatefulModels.HIDDEN, 41);
        harness.setProcessingTime(100); // the poll finds v2 and loads it off the task thread
        awaitAndApply(operator, 200); // the buffer is scored by v1, then v2 serves
        assertThat(reports())
                .anySatisfy(r -> assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.PROMOTED))
                .allSatisfy(r -> assertThat(r.outcome).isNotEqualTo(ModelUpdateReport.Outcome.REFUSED));
        List<Event> after = events(100, 5, 2);
        feed(after);
        harness.endInput();

        List<Tuple4<Integer, Integer, String, float[]>> out = harness.extractOutputValues();
        assertThat(out).hasSize(200);
        assertThat(Harnesses.failed(harness, EVENT)).isEmpty();
        Map<String, float[]> expected = reference(List.of(v1, v2), before, after, false);
        for (Tuple4<Integer, Integer, String, float[]> t : out) {
            assertThat(t.f2).as("version of key %s seq %s", t.f0, t.f1).isEqualTo(t.f1 < 5 ? "v1" : "v2");
            assertThat(t.f3)
                    .as("key %s seq %s", t.f0, t.f1)
                    .containsExactly(expected.get(t.f0 + "/" + t.f1), within(1e-5f));
        }
    }

    @Test
    void aVersionWhoseStatesDifferIsRefusedWithTheReasonAndEveryKeyScoresOnWithItsState() throws Exception {
        Path folder = dir.resolve("vad");
        Path v1 = publishWithHead(folder, "v1", StatefulModels.HIDDEN, 31);
        var operator = open(folder, v1);
        List<Event> before = events(100, 0, 1);
        feed(before);

        publishWithHead(folder, "v2", StatefulModels.HIDDEN + 1, 31); // a state of 5 values per key, not 4
        harness.setProcessingTime(100);
        awaitAndApply(operator, 200);
        assertThat(reports())
                .filteredOn(r -> r.outcome == ModelUpdateReport.Outcome.REFUSED)
                .singleElement()
                .satisfies(r -> assertThat(r.reason)
                        .contains("signature differs")
                        .contains("state")
                        .contains("resetStatesOnSignatureChange(true)"));
        List<Event> after = events(100, 5, 2);
        feed(after);
        harness.endInput();

        List<Tuple4<Integer, Integer, String, float[]>> out = harness.extractOutputValues();
        assertThat(out).hasSize(200);
        Map<String, float[]> expected = reference(List.of(v1, v1), before, after, false);
        for (Tuple4<Integer, Integer, String, float[]> t : out) {
            assertThat(t.f2).isEqualTo("v1");
            assertThat(t.f3)
                    .as("key %s seq %s", t.f0, t.f1)
                    .containsExactly(expected.get(t.f0 + "/" + t.f1), within(1e-5f));
        }
    }

    @Test
    void aVersionWhoseStatesDifferTakesOverWhenOptedInAndEveryKeyStartsFromItsInitialState() throws Exception {
        Path folder = dir.resolve("vad");
        Path v1 = publishWithHead(folder, "v1", StatefulModels.HIDDEN, 31);
        var operator = open(
                v1,
                ModelUpdates.builder()
                        .watch(folder.toString(), Duration.ofMillis(100))
                        .resetStatesOnSignatureChange(true)
                        .build());
        List<Event> before = events(100, 0, 1); // 100 is not a multiple of 8: some stay buffered until the swap
        feed(before);

        Path v2 = publishWithHead(folder, "v2", StatefulModels.HIDDEN + 1, 41); // a state of 5 values per key, not 4
        harness.setProcessingTime(100);
        awaitAndApply(operator, 200);
        assertThat(reports())
                .filteredOn(r -> r.outcome == ModelUpdateReport.Outcome.PROMOTED)
                .singleElement()
                .satisfies(r -> {
                    assertThat(r.version).isEqualTo("v2");
                    assertThat(r.reason).contains("every key's state is reset");
                });
        assertThat(reports()).noneSatisfy(r -> assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.REFUSED));
        List<Event> after = events(100, 5, 2);
        feed(after);
        harness.endInput();

        List<Tuple4<Integer, Integer, String, float[]>> out = harness.extractOutputValues();
        assertThat(out).hasSize(200);
        assertThat(Harnesses.failed(harness, EVENT)).isEmpty();
        Map<String, float[]> expected = reference(List.of(v1, v2), before, after, true);
        for (Tuple4<Integer, Integer, String, float[]> t : out) {
            assertThat(t.f2).as("version of key %s seq %s", t.f0, t.f1).isEqualTo(t.f1 < 5 ? "v1" : "v2");
            assertThat(t.f3)
                    .as("key %s seq %s", t.f0, t.f1)
                    .containsExactly(expected.get(t.f0 + "/" + t.f1), within(1e-5f));
        }
    }

    /**
     * Each key's outputs, "key/seq" to y: {@code first} through {@code models.get(0)}, then {@code second} through
     * {@code models.get(1)}, one record per run, the state carried from one to the next ({@code reset}: every key
     * starts {@code second} from the second model's initial state, zeros of its own size).
     */
    private static Map<String, float[]> reference(
            List<Path> models, List<Event> first, List<Event> second, boolean reset) throws Exception {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Map<Integer, float[]> states = new HashMap<>();
        Map<String, float[]> outputs = new LinkedHashMap<>();
        List<List<Event>> parts = List.of(first, second);
        for (int part = 0; part < 2; part++) {
            if (part == 1 && reset) {
                states.clear();
            }
            try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
                    OrtSession session = env.createSession(models.get(part).toString(), options)) {
                int hidden =
                        (int) ((TensorInfo) session.getInputInfo().get("state").getInfo()).getShape()[2];
                for (Event e : parts.get(part)) {
                    float[] state = states.getOrDefault(e.key, new float[hidden]);
                    Map<String, OnnxTensor> in = new LinkedHashMap<>();
                    try {
                        in.put("x", OnnxTensor.createTensor(env, FloatBuffer.wrap(e.x), new long[] {1, 3}));
                        in.put("state", OnnxTensor.createTensor(env, FloatBuffer.wrap(state), new long[] {1, 1, hidden
                        }));
                        in.put(
                                "sr",
                                OnnxTensor.createTensor(env, LongBuffer.wrap(new long[] {SAMPLE_RATE}), new long[0]));
                        try (OrtSession.Result result = session.run(in)) {
                            outputs.put(e.key + "/" + e.seq, floats(result, "y"));
                            states.put(e.key, floats(result, "stateN"));
                        }
                    } finally {
                        in.values().forEach(OnnxTensor::close);
                    }
                }
            }
        }
        return outputs;
    }

    private static float[] floats(OrtSession.Result result, String name) {
        FloatBuffer b = ((OnnxTensor) result.get(name).orElseThrow()).getFloatBuffer();
        float[] a = new float[b.remaining()];
        b.get(a);
        return a;
    }
}
