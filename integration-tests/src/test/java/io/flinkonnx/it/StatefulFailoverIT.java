package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.StatefulModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A recurrent model scored per key ({@link OnnxInference#stateful}) on a MiniCluster under checkpointing,
 * with a failure injected after a checkpoint that holds advanced states, and rescaled from 2 to 3 through
 * a stop-with-savepoint: the committed output of a two-phase sink equals, record for record, a plain ORT
 * loop over each key's records alone. A state reset on restore, or a state update applied twice (records
 * scored after the checkpoint, then replayed), would change the replayed keys' outputs; a replay from
 * scratch would commit records twice.
 */
class StatefulFailoverIT {
    private static final int KEYS = 50;
    private static final long RECORDS = 6_000;
    /** The failing subtask fails only after a checkpoint that covered at least this many of its outputs. */
    private static final int OUTPUTS_BEFORE_CHECKPOINT = 600;

    private static final AtomicInteger FAILURES = new AtomicInteger();
    private static final TypeInformation<Event> EVENT = TypeInformation.of(Event.class);
    private static final TypeInformation<Tuple3<Integer, Long, float[]>> SCORED =
            Types.TUPLE(Types.INT, Types.LONG, Types.PRIMITIVE_ARRAY(Types.FLOAT));

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    /** A record: its key, its id (the source's order, so the order within its key), a chunk of 1 to 3 steps. */
    public static final class Event {
        public int key;
        public long id;
        public float[] x;

        public Event() {}

        Event(int key, long id, float[] x) {
            this.key = key;
            this.id = id;
            this.x = x;
        }
    }

    /** The record of id {@code id}, the same in every attempt: 50 keys interleaved at random. */
    static Event event(long id) {
        SplittableRandom random = new SplittableRandom(0x5EEDL + id * 1_000_003L);
        int key = random.nextInt(KEYS);
        float[] x = new float[(1 + random.nextInt(3)) * StatefulModels.FEATURES];
        for (int k = 0; k < x.length; k++) {
            x[k] = (float) (random.nextDouble() * 2 - 1);
        }
        return new Event(key, id, x);
    }

    /**
     * Paces the first attempt (1 ms a record; checkpoint mails run between records), so that checkpoints
     * complete while records flow however fast the machine is; later attempts run at full speed.
     */
    static final class PaceFirstAttempt extends RichMapFunction<Long, Long> {
        @Override
        public Long map(Long id) {
            if (getRuntimeContext().getTaskInfo().getAttemptNumber() == 0) {
                LockSupport.parkNanos(1_000_000);
            }
            return id;
        }
    }

    /**
     * Fails the first attempt of subtask 0 at its first output after a completed checkpoint that covered
     * at least {@link #OUTPUTS_BEFORE_CHECKPOINT} of its outputs: the restored states are then far from the
     * initial ones, and records scored after that checkpoint (their states applied) are replayed.
     */
    static final class FailAfterAdvancedCheckpoint
            extends RichMapFunction<Tuple3<Integer, Long, float[]>, Tuple3<Integer, Long, float[]>>
            implements CheckpointedFunction, CheckpointListener {
        private transient int outputs;
        private transient Map<Long, Integer> outputsAtCheckpoint;
        private transient boolean armed;

        @Override
        public void initializeState(FunctionInitializationContext context) {
            outputsAtCheckpoint = new HashMap<>();
        }

        @Override
        public Tuple3<Integer, Long, float[]> map(Tuple3<Integer, Long, float[]> scored) {
            outputs++;
            if (armed
                    && getRuntimeContext().getTaskInfo().getAttemptNumber() == 0
                    && getRuntimeContext().getTaskInfo().getIndexOfThisSubtask() == 0) {
                FAILURES.incrementAndGet();
                throw new IllegalStateException("injected failure after a completed checkpoint");
            }
            return scored;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) {
            outputsAtCheckpoint.put(context.getCheckpointId(), outputs);
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            Integer covered = outputsAtCheckpoint.get(checkpointId);
            if (covered != null && covered >= OUTPUTS_BEFORE_CHECKPOINT) {
                armed = true;
            }
        }
    }

    @Test
    void afterAFailoverEachKeysCommittedOutputsEqualItsUninterruptedSequentialRun() throws Exception {
        CommittingSink.reset();
        FAILURES.set(0);
        Path lstm = StatefulModels.writeLstm(dir.resolve("lstm.onnx"));

        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ZERO);
        StreamExecutionEnvironment env = pipeline(conf, lstm, 2, true);
        env.execute("stateful failover");

        assertThat(FAILURES.get()).as("injected failures").isEqualTo(1);
        assertEqualsReference(CommittingSink.committed(), lstm);
    }

    @Test
    void rescaledFromTwoToThreeThroughAStopWithSavepointEachKeyContinuesItsSequence() throws Exception {
        CommittingSink.reset();
        FAILURES.set(0);
        Path lstm = StatefulModels.writeLstm(dir.resolve("lstm.onnx"));

        // Parallelism 2, paced: stopped with a savepoint once outputs were committed, mid-stream.
        JobClient first = pipeline(new Configuration(), lstm, 2, false).executeAsync("stateful, parallelism 2");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (CommittingSink.committed().size() < 1_000 && System.nanoTime() < deadline) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
        }
        assertThat(CommittingSink.committed())
                .as("committed before the savepoint")
                .hasSizeGreaterThan(999);
        String savepoint = first.stopWithSavepoint(
                        false, dir.resolve("savepoints").toUri().toString(), SavepointFormatType.CANONICAL)
                .get(60, TimeUnit.SECONDS);
        int beforeRescale = CommittingSink.committed().size();
        assertThat(beforeRescale).as("stopped mid-stream").isLessThan((int) RECORDS);

        // Parallelism 3 from the savepoint: the key groups, with their states, move to other subtasks.
        Configuration restore = new Configuration();
        restore.set(StateRecoveryOptions.SAVEPOINT_PATH, savepoint);
        pipeline(restore, lstm, 3, false).execute("stateful, parallelism 3");

        assertEqualsReference(CommittingSink.committed(), lstm);
    }

    /**
     * source (1) -> paced (1) -> events (1) -> keyBy -> stateful LSTM ({@code parallelism}) -> [fail after an
     * advanced checkpoint] -> two-phase sink; checkpoints every 50 ms; uids fixed, so a savepoint maps.
     */
    private static StreamExecutionEnvironment pipeline(
            Configuration conf, Path lstm, int parallelism, boolean injectFailure) {
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(50));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);

        OnnxInferenceSpec<Event, Tuple3<Integer, Long, float[]>> spec = OnnxInference.<Event>builder(lstm.toString())
                .encoder((e, row) -> row.put("x", e.x))
                .decoder((e, out) -> Tuple3.of(e.key, e.id, out.floats("y")), SCORED)
                .build();
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(64)
                .maxBatchDelay(Duration.ofMillis(20))
                .build();
        RecurrentState<Event> state = RecurrentState.<Event>builder()
                .state("h", "hn")
                .state("c", "cn")
                .build();

        // One source subtask: each key's records reach their scoring subtask in id order, in every attempt.
        var events = env.fromSequence(0, RECORDS - 1)
                .uid("ids")
                .setParallelism(1)
                .map(new PaceFirstAttempt())
                .uid("pace")
                .setParallelism(1)
                .map(StatefulFailoverIT::event)
                .uid("events")
                .returns(EVENT)
                .setParallelism(1);
        SingleOutputStreamOperator<Tuple3<Integer, Long, float[]>> scored = OnnxInference.stateful(
                        events.keyBy(e -> e.key, Types.INT), spec, policy, state)
                .uid("lstm");
        if (injectFailure) {
            scored = scored.map(new FailAfterAdvancedCheckpoint()).uid("fail").returns(SCORED);
        }
        scored.sinkTo(new CommittingSink<>(SCORED.createSerializer(new SerializerConfigImpl())))
                .uid("sink");
        return env;
    }

    /** One committed output per record; per key, in id order, each equal to the reference's. */
    private static void assertEqualsReference(List<Tuple3<Integer, Long, float[]>> committed, Path lstm)
            throws OrtException {
        assertThat(committed).as("committed outputs, one per record").hasSize((int) RECORDS);
        Map<Integer, List<Tuple3<Integer, Long, float[]>>> byKey = new TreeMap<>();
        for (Tuple3<Integer, Long, float[]> t : committed) {
            byKey.computeIfAbsent(t.f0, k -> new ArrayList<>()).add(t);
        }
        byKey.values().forEach(outputs -> outputs.sort((a, b) -> Long.compare(a.f1, b.f1)));
        Map<Integer, List<Tuple3<Integer, Long, float[]>>> expected = reference(lstm);
        assertThat(byKey.keySet()).isEqualTo(expected.keySet());
        for (Map.Entry<Integer, List<Tuple3<Integer, Long, float[]>>> key : expected.entrySet()) {
            List<Tuple3<Integer, Long, float[]>> got = byKey.get(key.getKey());
            assertThat(got).as("outputs of key %s", key.getKey()).hasSameSizeAs(key.getValue());
            for (int i = 0; i < got.size(); i++) {
                Tuple3<Integer, Long, float[]> want = key.getValue().get(i);
                assertThat(got.get(i).f1)
                        .as("key %s, record %s", key.getKey(), i)
                        .isEqualTo(want.f1);
                assertThat(got.get(i).f2)
                        .as("key %s, record %s (id %s)", key.getKey(), i, want.f1)
                        .containsExactly(want.f2, within(1e-5f));
            }
        }
    }

    /** Plain ORT, one key at a time, one record per run, each run's hn/cn fed to the key's next run. */
    private static Map<Integer, List<Tuple3<Integer, Long, float[]>>> reference(Path model) throws OrtException {
        Map<Integer, List<Event>> byKey = new TreeMap<>();
        for (long id = 0; id < RECORDS; id++) {
            Event e = event(id);
            byKey.computeIfAbsent(e.key, k -> new ArrayList<>()).add(e);
        }
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        long[] stateShape = {1, 1, StatefulModels.HIDDEN};
        Map<Integer, List<Tuple3<Integer, Long, float[]>>> outputs = new TreeMap<>();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
                OrtSession session = env.createSession(model.toString(), options)) {
            for (Map.Entry<Integer, List<Event>> key : byKey.entrySet()) {
                float[] h = new float[StatefulModels.HIDDEN];
                float[] c = new float[StatefulModels.HIDDEN];
                List<Tuple3<Integer, Long, float[]>> ys = new ArrayList<>();
                for (Event e : key.getValue()) {
                    long[] xShape = {1, e.x.length / StatefulModels.FEATURES, StatefulModels.FEATURES};
                    try (OnnxTensor x = OnnxTensor.createTensor(env, FloatBuffer.wrap(e.x), xShape);
                            OnnxTensor hIn = OnnxTensor.createTensor(env, FloatBuffer.wrap(h), stateShape);
                            OnnxTensor cIn = OnnxTensor.createTensor(env, FloatBuffer.wrap(c), stateShape);
                            OrtSession.Result result = session.run(Map.of("x", x, "h", hIn, "c", cIn))) {
                        ys.add(Tuple3.of(e.key, e.id, floats(result, "y")));
                        h = floats(result, "hn");
                        c = floats(result, "cn");
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
}
