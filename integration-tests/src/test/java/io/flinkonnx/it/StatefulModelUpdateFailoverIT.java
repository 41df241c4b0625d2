package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.StatefulModels;
import io.flinkonnx.it.StatefulFailoverIT.Event;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.core.execution.JobClient;
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
 * A stateful model whose new version arrives in its watched folder mid-stream, on a MiniCluster under
 * checkpointing, with a failure injected after a checkpoint that holds the swap: the two-phase sink commits
 * exactly one output per record, each key's outputs name v1 and then v2 (never v1 again: the restored subtasks
 * serve the checkpointed version), and each output equals a plain ORT loop over the key's records that runs each
 * record through the version it names, the state carried across the swap.
 */
class StatefulModelUpdateFailoverIT {
    private static final long RECORDS = 4_000;
    private static final Duration POLL = Duration.ofMillis(50);
    private static final AtomicInteger FAILURES = new AtomicInteger();
    private static final TypeInformation<Event> EVENT = TypeInformation.of(Event.class);
    /** (key, id, version, y). */
    private static final TypeInformation<Tuple4<Integer, Long, String, float[]>> SCORED =
            Types.TUPLE(Types.INT, Types.LONG, Types.STRING, Types.PRIMITIVE_ARRAY(Types.FLOAT));

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    /**
     * Fails the first attempt of subtask 0 at its first output after a completed checkpoint that covered an output
     * of v2: the restored subtasks must serve v2 again, with the states v1 and v2 left.
     */
    static final class FailAfterCheckpointedSwap
            extends RichMapFunction<Tuple4<Integer, Long, String, float[]>, Tuple4<Integer, Long, String, float[]>>
            implements CheckpointedFunction, CheckpointListener {
        private transient int v2Outputs;
        private transient Map<Long, Integer> v2AtCheckpoint;
        private transient boolean armed;

        @Override
        public void initializeState(FunctionInitializationContext context) {
            v2AtCheckpoint = new HashMap<>();
        }

        @Override
        public Tuple4<Integer, Long, String, float[]> map(Tuple4<Integer, Long, String, float[]> scored) {
            if (armed
                    && getRuntimeContext().getTaskInfo().getAttemptNumber() == 0
                    && getRuntimeContext().getTaskInfo().getIndexOfThisSubtask() == 0) {
                FAILURES.incrementAndGet();
                throw new IllegalStateException("injected failure after a checkpoint that holds the swap");
            }
            if ("v2".equals(scored.f2)) {
                v2Outputs++;
            }
            return scored;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) {
            v2AtCheckpoint.put(context.getCheckpointId(), v2Outputs);
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            Integer covered = v2AtCheckpoint.get(checkpointId);
            if (covered != null && covered > 0) {
                armed = true;
            }
        }
    }

    /** Writes a version's model file at the path given, returning it. */
    @FunctionalInterface
    interface ModelWriter {
        Path write(Path file) throws Exception;
    }

    @Test
    void aVersionSwappedMidStreamSurvivesAFailoverAndEachOutputFollowsTheVersionItNames() throws Exception {
        Path folder = Files.createDirectories(dir.resolve("lstm"));
        Path v1 = StatefulModels.writeLstm(
                Files.createDirectories(folder.resolve("v1")).resolve("model.onnx"), 21);
        List<Tuple4<Integer, Long, String, float[]>> committed = runWithSwapAndFailover(
                folder, v1, f -> StatefulModels.writeLstm(f, 51), ModelUpdates.watch(folder.toString(), POLL));
        assertFollowTheirVersions(
                committed, Map.of("v1", v1, "v2", folder.resolve("v2").resolve("model.onnx")), false);
    }

    /**
     * The same with a v2 whose states are larger (6 values per key, not 4) and the reset opted into: at the swap
     * every key's state is cleared, so each key's first v2 output starts from v2's initial state, and the failover
     * after a checkpoint that holds the swap restores v2 with the states it wrote.
     */
    @Test
    void aVersionWithOtherStatesResetsEveryKeyAtTheSwapAndSurvivesAFailover() throws Exception {
        Path folder = Files.createDirectories(dir.resolve("lstm"));
        Path v1 = StatefulModels.writeLstmWithHead(
                Files.createDirectories(folder.resolve("v1")).resolve("model.onnx"), 21, StatefulModels.HIDDEN);
        List<Tuple4<Integer, Long, String, float[]>> committed = runWithSwapAndFailover(
                folder,
                v1,
                f -> StatefulModels.writeLstmWithHead(f, 51, StatefulModels.HIDDEN + 2),
                ModelUpdates.builder()
                        .watch(folder.toString(), POLL)
                        .resetStatesOnSignatureChange(true)
                        .build());
        assertFollowTheirVersions(
                committed, Map.of("v1", v1, "v2", folder.resolve("v2").resolve("model.onnx")), true);
    }

    /**
     * Runs the job on v1, publishes v2 (written by {@code v2}) once outputs are committed, and fails once after a
     * checkpoint that covered a v2 output; returns the committed outputs, checked to be one per record.
     */
    private List<Tuple4<Integer, Long, String, float[]>> runWithSwapAndFailover(
            Path folder, Path v1, ModelWriter v2, ModelUpdates updates) throws Exception {
        CommittingSink.reset();
        FAILURES.set(0);
        Configuration conf = new Configuration();
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(50));
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ZERO);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        OnnxInferenceSpec<Event, Tuple4<Integer, Long, String, float[]>> spec = OnnxInference.<Event>builder(
                        v1.toString())
                .encoder((e, row) -> row.put("x", e.x))
                .decoder((e, out) -> Tuple4.of(e.key, e.id, out.modelVersion(), out.floats("y")), SCORED)
                .build();
        var events = env.fromSequence(0, RECORDS - 1)
                .setParallelism(1)
                .map(new StatefulFailoverIT.PaceFirstAttempt())
                .setParallelism(1)
                .map(StatefulFailoverIT::event)
                .returns(EVENT)
                .setParallelism(1);
        SingleOutputStreamOperator<Tuple4<Integer, Long, String, float[]>> scored = OnnxInference.stateful(
                events.keyBy(e -> e.key, Types.INT),
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(64)
                        .maxBatchDelay(Duration.ofMillis(20))
                        .build(),
                RecurrentState.<Event>builder()
                        .state("h", "hn")
                        .state("c", "cn")
                        .build(),
                updates);
        scored.map(new FailAfterCheckpointedSwap())
                .returns(SCORED)
                .sinkTo(new CommittingSink<>(SCORED.createSerializer(new SerializerConfigImpl())));
        JobClient job = env.executeAsync("stateful model update with a failover");

        // v2 appears once outputs are committed (the first attempt is paced at 1 ms a record); written under a
        // name the watcher ignores, then renamed, so it is never seen half-written
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (CommittingSink.committed().size() < 500 && System.nanoTime() < deadline) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
        }
        Path staging = Files.createDirectories(folder.resolve(".v2"));
        v2.write(staging.resolve("model.onnx"));
        Files.move(staging, folder.resolve("v2"));
        job.getJobExecutionResult().get(180, TimeUnit.SECONDS);

        assertThat(FAILURES.get()).as("injected failures").isEqualTo(1);
        List<Tuple4<Integer, Long, String, float[]>> committed = CommittingSink.committed();
        assertThat(committed).as("committed outputs, one per record").hasSize((int) RECORDS);
        assertThat(committed.stream().map(t -> t.f1).distinct().count()).isEqualTo(RECORDS);
        return committed;
    }

    /**
     * Per key in id order: versions go v1 then v2, never back; each output equals the version it names run on the
     * key's state as the previous record (of either version) left it, or with {@code reset} at the key's first v2
     * output, on v2's initial state (zeros of v2's state size).
     */
    private static void assertFollowTheirVersions(
            List<Tuple4<Integer, Long, String, float[]>> committed, Map<String, Path> models, boolean reset)
            throws Exception {
        Map<Integer, List<Tuple4<Integer, Long, String, float[]>>> byKey = new TreeMap<>();
        for (Tuple4<Integer, Long, String, float[]> t : committed) {
            byKey.computeIfAbsent(t.f0, k -> new ArrayList<>()).add(t);
        }
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Map<String, OrtSession> sessions = new HashMap<>();
        long v2Outputs = 0;
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            for (Map.Entry<String, Path> m : models.entrySet()) {
                sessions.put(m.getKey(), env.createSession(m.getValue().toString(), options));
            }
            for (List<Tuple4<Integer, Long, String, float[]>> outputs : byKey.values()) {
                outputs.sort((a, b) -> Long.compare(a.f1, b.f1));
                float[] h = new float[hidden(sessions.get("v1"))];
                float[] c = new float[h.length];
                boolean swapped = false;
                for (Tuple4<Integer, Long, String, float[]> t : outputs) {
                    assertThat(t.f2).as("version of id %s", t.f1).isIn("v1", "v2");
                    if (swapped) {
                        assertThat(t.f2)
                                .as("id %s after its key's first v2 output", t.f1)
                                .isEqualTo("v2");
                    } else if (reset && t.f2.equals("v2")) {
                        h = new float[hidden(sessions.get("v2"))];
                        c = new float[h.length];
                    }
                    swapped |= t.f2.equals("v2");
                    long[] stateShape = {1, 1, h.length};
                    v2Outputs += t.f2.equals("v2") ? 1 : 0;
                    Event e = StatefulFailoverIT.event(t.f1);
                    long[] xShape = {1, e.x.length / StatefulModels.FEATURES, StatefulModels.FEATURES};
                    try (OnnxTensor x = OnnxTensor.createTensor(env, FloatBuffer.wrap(e.x), xShape);
                            OnnxTensor hIn = OnnxTensor.createTensor(env, FloatBuffer.wrap(h), stateShape);
                            OnnxTensor cIn = OnnxTensor.createTensor(env, FloatBuffer.wrap(c), stateShape);
                            OrtSession.Result result = sessions.get(t.f2).run(Map.of("x", x, "h", hIn, "c", cIn))) {
                        assertThat(t.f3)
                                .as("key %s id %s (%s)", t.f0, t.f1, t.f2)
                                .containsExactly(floats(result, "y"), within(1e-5f));
                        h = floats(result, "hn");
                        c = floats(result, "cn");
                    }
                }
            }
        } finally {
            for (OrtSession s : sessions.values()) {
                s.close();
            }
        }
        assertThat(v2Outputs).as("outputs of v2").isGreaterThan(0);
    }

    /** The state size of a model's {@code h} input ({@code [1, batch, hidden]}). */
    private static int hidden(OrtSession session) throws Exception {
        return (int) ((TensorInfo) session.getInputInfo().get("h").getInfo()).getShape()[2];
    }

    private static float[] floats(OrtSession.Result result, String name) {
        FloatBuffer b = ((OnnxTensor) result.get(name).orElseThrow()).getFloatBuffer();
        float[] a = new float[b.remaining()];
        b.get(a);
        return a;
    }
}
