package io.flinkonnx.flink.stateful;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.StatefulModels;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Recurrent state per key, batched across keys, against the reference: for each key, a plain ORT loop over
 * that key's records alone, feeding each run's state outputs to the next run.
 */
class StatefulInferenceTest {
    private static final int KEYS = 50;
    private static final int MAX_PARALLELISM = 128;
    private static final long SAMPLE_RATE = 8000L;
    private static final TypeInformation<Event> EVENT = TypeInformation.of(Event.class);
    private static final TypeInformation<Tuple3<Integer, Integer, float[]>> SCORED =
            Types.TUPLE(Types.INT, Types.INT, Types.PRIMITIVE_ARRAY(Types.FLOAT));

    @TempDir
    static Path dir;

    private static Path lstm;
    private static Path gru;

    /** A record: its key, its position in the key's sequence, its features, whether it ends the sequence. */
    public static final class Event {
        public int key;
        public int seq;
        public float[] x;
        public boolean end;

        public Event() {}

        Event(int key, int seq, float[] x, boolean end) {
            this.key = key;
            this.seq = seq;
            this.x = x;
            this.end = end;
        }
    }

    @BeforeAll
    static void models() throws Exception {
        lstm = StatefulModels.writeLstm(dir.resolve("lstm.onnx"));
        gru = StatefulModels.writeGruWithConstant(dir.resolve("gru.onnx"));
    }

    // ---- the behaviours ----

    @ParameterizedTest(name = "batch size {0}")
    @ValueSource(ints = {1, 7, 64})
    void lstmStatesPerKeyEqualEachKeysSequentialRunAtAnyBatchSize(int batchSize) throws Exception {
        List<Event> events = events(600, true, 1);
        var harness = harness(lstmSpec(), policy(batchSize), lstmState(), 1, 0);
        harness.open();
        feed(harness, events);
        harness.endInput();

        assertMatches(harness.extractOutputValues(), reference(lstm, events, false));
        assertThat(Harnesses.failed(harness, EVENT)).isEmpty();
        long runs = ((StatefulInferenceOperator<?, ?>) harness.getOperator()).runCount();
        if (batchSize == 64) {
            // Batched across keys: far fewer runs than records (chunks of equal length share a run).
            assertThat(runs).isLessThan(events.size() / 4);
        }
        harness.close();
    }

    @ParameterizedTest(name = "batch size {0}")
    @ValueSource(ints = {1, 7, 64})
    void gruWithScalarConstantAndGivenAxisEqualsEachKeysSequentialRun(int batchSize) throws Exception {
        List<Event> events = events(600, false, 2);
        var harness = harness(gruSpec(), policy(batchSize), gruState().build(), 1, 0);
        harness.open();
        feed(harness, events);
        harness.endInput();

        assertMatches(harness.extractOutputValues(), reference(gru, events, true));
        harness.close();
    }

    @Test
    void restoredFromACheckpointContinuesAsTheUninterruptedRunWithoutApplyingStatesTwice() throws Exception {
        List<Event> events = events(400, true, 3);
        int checkpointAt = 173;
        var first = harness(lstmSpec(), policy(16), lstmState(), 1, 0);
        first.open();
        feed(first, events.subList(0, checkpointAt));
        first.prepareSnapshotPreBarrier(1);
        OperatorSubtaskState snapshot = first.snapshot(1, 1);
        List<Tuple3<Integer, Integer, float[]>> out = new ArrayList<>(first.extractOutputValues());
        // Records after the checkpoint are scored, then the task is lost: their outputs are never committed.
        feed(first, events.subList(checkpointAt, checkpointAt + 40));
        first.endInput();
        first.close();

        var restored = harness(lstmSpec(), policy(16), lstmState(), 1, 0);
        restored.initializeState(snapshot);
        restored.open();
        feed(restored, events.subList(checkpointAt, events.size())); // the source replays from the checkpoint
        restored.endInput();
        out.addAll(restored.extractOutputValues());
        restored.close();

        assertMatches(out, reference(lstm, events, false));
    }

    @Test
    void rescaledFromParallelismTwoToThreeContinuesAsTheUninterruptedRun() throws Exception {
        List<Event> events = events(400, false, 4);
        int savepointAt = 211;
        List<Tuple3<Integer, Integer, float[]>> out = new ArrayList<>();
        OperatorSubtaskState[] snapshots = new OperatorSubtaskState[2];
        for (int subtask = 0; subtask < 2; subtask++) {
            var h = harness(gruSpec(), policy(8), gruState().build(), 2, subtask);
            h.open();
            feed(h, routed(events.subList(0, savepointAt), 2, subtask));
            h.prepareSnapshotPreBarrier(1);
            snapshots[subtask] = h.snapshot(1, 1);
            out.addAll(h.extractOutputValues());
            h.close();
        }
        OperatorSubtaskState savepoint = AbstractStreamOperatorTestHarness.repackageState(snapshots);
        for (int subtask = 0; subtask < 3; subtask++) {
            var h = harness(gruSpec(), policy(8), gruState().build(), 3, subtask);
            h.initializeState(AbstractStreamOperatorTestHarness.repartitionOperatorState(
                    savepoint, MAX_PARALLELISM, 2, 3, subtask));
            h.open();
            feed(h, routed(events.subList(savepointAt, events.size()), 3, subtask));
            h.endInput();
            out.addAll(h.extractOutputValues());
            h.close();
        }

        assertMatches(out, reference(gru, events, true));
    }

    @Test
    void aResetRecordIsScoredWithItsStateThenItsKeyStartsFromTheInitialState() throws Exception {
        List<Event> events = events(300, false, 5);
        Random random = new Random(55);
        for (Event e : events) {
            e.end = random.nextInt(6) == 0;
        }
        var harness =
                harness(gruSpec(), policy(7), gruState().resetWhen(e -> e.end).build(), 1, 0);
        harness.open();
        feed(harness, events);
        harness.endInput();

        assertMatches(harness.extractOutputValues(), reference(gru, events, true));
        harness.close();
    }

    @Test
    void aResetRecordClearsAStoredStateThatNoLongerFitsAChangedModelSoTheKeyStartsAgain() throws Exception {
        // Checkpointed with the GRU's state of 4 values per key...
        var first =
                harness(gruSpec(), policy(4), gruState().resetWhen(e -> e.end).build(), 1, 0);
        first.open();
        feed(first, List.of(new Event(1, 0, features(1, 3), false), new Event(2, 0, features(2, 3), false)));
        first.prepareSnapshotPreBarrier(1);
        OperatorSubtaskState snapshot = first.snapshot(1, 1);
        assertThat(first.extractOutputValues()).hasSize(2);
        first.close();

        // ... restored into a changed model whose state holds 5.
        Path gru5 = StatefulModels.writeGruWithConstant(dir.resolve("gru5.onnx"), 5);
        OnnxInferenceSpec<Event, Tuple3<Integer, Integer, float[]>> spec5 = OnnxInference.<Event>builder(
                        gru5.toString())
                .encoder((e, row) -> row.put("x", e.x))
                .decoder((e, out) -> Tuple3.of(e.key, e.seq, out.floats("y")), SCORED)
                .build();
        var restored =
                harness(spec5, policy(4), gruState().resetWhen(e -> e.end).build(), 1, 0);
        restored.initializeState(snapshot);
        restored.open();
        Event stale = new Event(1, 1, features(3, 3), false);
        Event reset = new Event(1, 2, features(4, 3), true);
        Event after = new Event(1, 3, features(5, 3), false);
        Event otherKey = new Event(2, 1, features(6, 3), false);
        feed(restored, List.of(stale, reset, after, otherKey));
        restored.endInput();

        // The reset record cannot be scored with its sequence's state (a dead letter, not a prediction from the
        // wrong state), but it clears that state: the key's next record runs from the initial state.
        List<float[]> expected = reference(gru5, List.of(after), true, 5).get(1);
        assertThat(restored.extractOutputValues()).satisfiesExactly(y -> {
            assertThat(y.f1).isEqualTo(3);
            assertThat(y.f2).containsExactly(expected.get(0), within(1e-5f));
        });
        assertThat(Harnesses.failed(restored, EVENT))
                .extracting(f -> f.record.key + "/" + f.record.seq)
                .containsExactly("1/1", "1/2", "2/1");
        assertThat(Harnesses.failed(restored, EVENT))
                .allSatisfy(f -> assertThat(f.reason).contains("does not fit the model's state"));
        assertThat(Harnesses.failed(restored, EVENT))
                .filteredOn(f -> f.record.seq == 2)
                .singleElement()
                .satisfies(f -> assertThat(f.reason).contains("the stored state is cleared"));
        restored.close();
    }

    @Test
    void aKeyIdleLongerThanTheTtlStartsFromTheInitialState() throws Exception {
        var harness = harness(
                gruSpec(), policy(1), gruState().ttl(Duration.ofMillis(100)).build(), 1, 0);
        harness.setStateTtlProcessingTime(0);
        harness.open();
        Event a1 = new Event(1, 0, features(11, 3), false);
        Event b1 = new Event(2, 0, features(12, 3), false);
        Event a2 = new Event(1, 1, features(13, 3), false);
        Event b2 = new Event(2, 1, features(14, 3), false);
        Event a3 = new Event(1, 2, features(15, 3), false);
        feed(harness, List.of(a1, b1));
        harness.setStateTtlProcessingTime(60);
        feed(harness, List.of(a2)); // within the TTL: continues, and the write refreshes key 1's clock
        harness.setStateTtlProcessingTime(150);
        feed(harness, List.of(b2, a3)); // key 2 idle 150 ms: expired; key 1 idle 90 ms: kept
        harness.endInput();

        // Key 2's second record runs as if its first had ended the sequence.
        b1.end = true;
        assertMatches(harness.extractOutputValues(), reference(gru, List.of(a1, b1, a2, b2, a3), true));
        harness.close();
    }

    @Test
    void anEncoderThatGivesAStateInputSendsTheRecordToTheDeadLetters() throws Exception {
        OnnxInferenceSpec<Event, Tuple3<Integer, Integer, float[]>> spec = OnnxInference.<Event>builder(gru.toString())
                .encoder((e, row) -> row.put("x", e.x).put("state", new float[StatefulModels.HIDDEN]))
                .decoder((e, out) -> Tuple3.of(e.key, e.seq, out.floats("y")), SCORED)
                .build();
        var harness = harness(spec, policy(4), gruState().build(), 1, 0);
        harness.open();
        feed(harness, List.of(new Event(1, 0, features(1, 3), false)));
        harness.endInput();

        assertThat(harness.extractOutputValues()).isEmpty();
        assertThat(Harnesses.failed(harness, EVENT)).singleElement().satisfies(f -> assertThat(f.reason)
                .contains("'state'", "supplied by the operator"));
        harness.close();
    }

    @Test
    void aStateWhoseBatchAxisCannotBeDerivedFailsAtOpenAskingForTheAxis() throws Exception {
        var harness = harness(
                gruSpec(),
                policy(4),
                RecurrentState.<Event>builder()
                        .state("state", "stateN")
                        .constant("sr", SAMPLE_RATE)
                        .build(),
                1,
                0);
        assertThatThrownBy(harness::open)
                .hasMessageContaining("Cannot tell the batch axis of state input")
                .hasMessageContaining("state(\"state\", \"stateN\", axis)");
    }

    @Test
    void aStateNameTheModelLacksFailsAtOpenListingTheInputs() throws Exception {
        var harness = harness(
                lstmSpec(),
                policy(4),
                RecurrentState.<Event>builder()
                        .state("h0", "hn")
                        .state("c", "cn")
                        .build(),
                1,
                0);
        assertThatThrownBy(harness::open)
                .hasMessageContaining("has no input 'h0'")
                .hasMessageContaining("x:FLOAT");
    }

    // ---- set-up ----

    private static OnnxInferenceSpec<Event, Tuple3<Integer, Integer, float[]>> lstmSpec() {
        return OnnxInference.<Event>builder(lstm.toString())
                .encoder((e, row) -> row.put("x", e.x))
                .decoder((e, out) -> Tuple3.of(e.key, e.seq, out.floats("y")), SCORED)
                .build();
    }

    private static OnnxInferenceSpec<Event, Tuple3<Integer, Integer, float[]>> gruSpec() {
        return OnnxInference.<Event>builder(gru.toString())
                .encoder((e, row) -> row.put("x", e.x))
                .decoder((e, out) -> Tuple3.of(e.key, e.seq, out.floats("y")), SCORED)
                .build();
    }

    private static RecurrentState<Event> lstmState() {
        return RecurrentState.<Event>builder().state("h", "hn").state("c", "cn").build();
    }

    private static RecurrentState.Builder<Event> gruState() {
        return RecurrentState.<Event>builder().state("state", "stateN", 1).constant("sr", SAMPLE_RATE);
    }

    private static BatchPolicy policy(int batchSize) {
        // The harness's processing time stands still: batches close by size, barrier or end of input.
        return BatchPolicy.builder()
                .maxBatchSize(batchSize)
                .maxBatchDelay(Duration.ofSeconds(1))
                .build();
    }

    private static KeyedOneInputStreamOperatorTestHarness<Integer, Event, Tuple3<Integer, Integer, float[]>> harness(
            OnnxInferenceSpec<Event, Tuple3<Integer, Integer, float[]>> spec,
            BatchPolicy policy,
            RecurrentState<Event> state,
            int parallelism,
            int subtask)
            throws Exception {
        var operator = new StatefulInferenceOperator<>(spec, policy, state, FailedRecord.tag(EVENT));
        var harness = new KeyedOneInputStreamOperatorTestHarness<>(
                operator, (KeySelector<Event, Integer>) e -> e.key, Types.INT, MAX_PARALLELISM, parallelism, subtask);
        harness.setProcessingTime(0);
        return harness;
    }

    private static void feed(KeyedOneInputStreamOperatorTestHarness<Integer, Event, ?> harness, List<Event> events)
            throws Exception {
        for (Event e : events) {
            harness.processElement(new StreamRecord<>(e, e.seq));
        }
    }

    /** The events whose key the subtask owns at this parallelism. */
    private static List<Event> routed(List<Event> events, int parallelism, int subtask) {
        return events.stream()
                .filter(e -> KeyGroupRangeAssignment.assignKeyToParallelOperator(e.key, MAX_PARALLELISM, parallelism)
                        == subtask)
                .toList();
    }

    /** {@code count} records of {@link #KEYS} keys interleaved at random; chunks of 1 to 3 steps if asked. */
    private static List<Event> events(int count, boolean chunks, long seed) {
        Random random = new Random(seed);
        int[] next = new int[KEYS];
        List<Event> events = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int key = random.nextInt(KEYS);
            int steps = chunks ? 1 + random.nextInt(3) : 1;
            float[] x = new float[steps * StatefulModels.FEATURES];
            for (int k = 0; k < x.length; k++) {
                x[k] = random.nextFloat() * 2 - 1;
            }
            events.add(new Event(key, next[key]++, x, false));
        }
        return events;
    }

    private static float[] features(int seed, int n) {
        Random random = new Random(seed);
        float[] x = new float[n];
        for (int k = 0; k < n; k++) {
            x[k] = random.nextFloat() * 2 - 1;
        }
        return x;
    }

    // ---- the reference: plain ORT, one key at a time, one record per run ----

    private static Map<Integer, List<float[]>> reference(Path model, List<Event> events, boolean gruModel)
            throws OrtException {
        return reference(model, events, gruModel, StatefulModels.HIDDEN);
    }

    private static Map<Integer, List<float[]>> reference(Path model, List<Event> events, boolean gruModel, int hidden)
            throws OrtException {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Map<Integer, List<Event>> byKey = new LinkedHashMap<>();
        for (Event e : events) {
            byKey.computeIfAbsent(e.key, k -> new ArrayList<>()).add(e);
        }
        Map<Integer, List<float[]>> outputs = new TreeMap<>();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
                OrtSession session = env.createSession(model.toString(), options)) {
            for (Map.Entry<Integer, List<Event>> key : byKey.entrySet()) {
                float[][] state = new float[gruModel ? 1 : 2][hidden];
                List<float[]> ys = new ArrayList<>();
                for (Event e : key.getValue()) {
                    Map<String, OnnxTensor> in = new LinkedHashMap<>();
                    try {
                        long[] xShape = gruModel
                                ? new long[] {1, StatefulModels.FEATURES}
                                : new long[] {1, e.x.length / StatefulModels.FEATURES, StatefulModels.FEATURES};
                        in.put("x", OnnxTensor.createTensor(env, FloatBuffer.wrap(e.x), xShape));
                        long[] stateShape = {1, 1, hidden};
                        if (gruModel) {
                            in.put("state", OnnxTensor.createTensor(env, FloatBuffer.wrap(state[0]), stateShape));
                            in.put(
                                    "sr",
                                    OnnxTensor.createTensor(
                                            env, LongBuffer.wrap(new long[] {SAMPLE_RATE}), new long[0]));
                        } else {
                            in.put("h", OnnxTensor.createTensor(env, FloatBuffer.wrap(state[0]), stateShape));
                            in.put("c", OnnxTensor.createTensor(env, FloatBuffer.wrap(state[1]), stateShape));
                        }
                        try (OrtSession.Result result = session.run(in)) {
                            ys.add(floats(result, "y"));
                            if (gruModel) {
                                state[0] = floats(result, "stateN");
                            } else {
                                state[0] = floats(result, "hn");
                                state[1] = floats(result, "cn");
                            }
                        }
                    } finally {
                        in.values().forEach(OnnxTensor::close);
                    }
                    if (e.end) {
                        state = new float[state.length][hidden];
                    }
                }
                outputs.put(key.getKey(), ys);
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

    /** Per key: the outputs in the key's order, each equal to the reference's. */
    private static void assertMatches(
            List<Tuple3<Integer, Integer, float[]>> actual, Map<Integer, List<float[]>> expected) {
        Map<Integer, List<Tuple3<Integer, Integer, float[]>>> byKey = new TreeMap<>();
        for (Tuple3<Integer, Integer, float[]> t : actual) {
            byKey.computeIfAbsent(t.f0, k -> new ArrayList<>()).add(t);
        }
        assertThat(byKey.keySet()).isEqualTo(expected.keySet());
        for (Map.Entry<Integer, List<float[]>> key : expected.entrySet()) {
            List<Tuple3<Integer, Integer, float[]>> got = byKey.get(key.getKey());
            assertThat(got).as("outputs of key %s", key.getKey()).hasSameSizeAs(key.getValue());
            for (int i = 0; i < got.size(); i++) {
                assertThat(got.get(i).f1)
                        .as("key %s, output %s in order", key.getKey(), i)
                        .isEqualTo(i);
                assertThat(got.get(i).f2)
                        .as("key %s, record %s", key.getKey(), i)
                        .containsExactly(key.getValue().get(i), within(1e-5f));
            }
        }
    }
}
