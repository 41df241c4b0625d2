package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.providers.SessionSettings;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** One session per (slot, model, settings), reference counted, on 2 TaskManagers x 2 slots. */
class SessionSharingTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    private String model;

    @BeforeEach
    void writeModel() throws Exception {
        model = new TestModels.Mlp(16, 16, 2)
                .writeTo(dir.resolve("shared.onnx"))
                .toString();
    }

    /** Two scoring operators in separate tasks (no chaining) at parallelism 4 over 4 slots. */
    private void runTwoOperatorJob(int records) throws Exception {
        runTwoOperatorJob(records, SessionSharing.PER_SLOT);
    }

    private void runTwoOperatorJob(int records, SessionSharing sharing) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(4);
        List<float[]> data = IntStream.range(0, records)
                .mapToObj(k -> TestModels.features(k, 16))
                .collect(Collectors.toList());
        // Operators of one slot share a session while their lifetimes overlap, as they do in a long-running
        // job. A bounded test job could let one finish before the other opens, so records are held back until
        // all 8 operator instances hold their session.
        DataStream<float[]> features = env.fromData(data)
                .map(new AwaitSessionReferences(8))
                .setParallelism(1)
                .rebalance();
        OnnxInferenceFunction<float[], float[]> function = OnnxInference.<float[]>builder(model)
                .encoder((x, row) -> row.put(x))
                .decoder((x, out) -> out.floats(), PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO)
                .sessionSharing(sharing)
                .buildFunction();
        DataStream<float[]> first = features.map(function).name("score-a");
        // A second operator on the same model in its own task: it shares the slot, so it shares the session.
        features.map(function).name("score-b").disableChaining().union(first).sinkTo(new DiscardingSink<>());
        env.execute("two operators, one model");
    }

    /** Passes records on once {@code expected} operator instances hold a session (fails after a minute). */
    static final class AwaitSessionReferences implements MapFunction<float[], float[]> {
        private final int expected;
        private transient boolean released;

        AwaitSessionReferences(int expected) {
            this.expected = expected;
        }

        @Override
        public float[] map(float[] value) {
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
            while (!released && SessionRegistry.INSTANCE.references() < expected) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("Only " + SessionRegistry.INSTANCE.references()
                            + " session references after a minute, expected " + expected);
                }
                LockSupport.parkNanos(1_000_000);
            }
            released = true;
            return value;
        }
    }

    @Test
    void twoOperatorsAtParallelismFourOpenFourSessionsNotEight() throws Exception {
        long before = SessionRegistry.INSTANCE.sessionsCreated();
        long closedBefore = SessionRegistry.INSTANCE.sessionsClosed();

        runTwoOperatorJob(100);

        assertThat(SessionRegistry.INSTANCE.sessionsCreated() - before).isEqualTo(4);
        assertThat(SessionRegistry.INSTANCE.sessionsClosed() - closedBefore).isEqualTo(4);
        assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }

    /**
     * Per TaskManager: the MiniCluster's TaskManagers all run in this JVM, so the 8 operator instances share
     * one session (on a real cluster: one per TaskManager process).
     */
    @Test
    void perTaskManagerSharingOpensOneSessionForEverySlotOfTheProcess() throws Exception {
        long before = SessionRegistry.INSTANCE.sessionsCreated();

        runTwoOperatorJob(100, SessionSharing.PER_TASK_MANAGER);

        assertThat(SessionRegistry.INSTANCE.sessionsCreated() - before).isEqualTo(1);
        assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }

    @Test
    void twentyConsecutiveJobsLeaveNoSessionOpen() throws Exception {
        long before = SessionRegistry.INSTANCE.sessionsCreated();
        for (int job = 0; job < 20; job++) {
            runTwoOperatorJob(8);
            assertThat(SessionRegistry.INSTANCE.openSessions())
                    .as("open after job %d", job)
                    .isZero();
        }
        assertThat(SessionRegistry.INSTANCE.sessionsCreated() - before).isEqualTo(20 * 4);
    }

    @Test
    void differentSettingsDoNotShareASession() throws Exception {
        long before = SessionRegistry.INSTANCE.sessionsCreated();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DataStream<float[]> features = env.fromData(List.of(TestModels.features(1, 16)));
        features.map(new OnnxInference(model))
                .map(f -> TestModels.features(2, 16))
                .map(new OnnxInference(model)
                        .withSessionSettings(
                                SessionSettings.builder().intraOpThreads(2).build()))
                .sinkTo(new DiscardingSink<>());
        env.execute();
        assertThat(SessionRegistry.INSTANCE.sessionsCreated() - before).isEqualTo(2);
    }
}
