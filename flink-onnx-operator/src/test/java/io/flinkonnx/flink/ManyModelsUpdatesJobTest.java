package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
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
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Many watched models in a real job (MiniCluster, 2 scoring subtasks, checkpoints every 50 ms): a version written
 * to one model's folder mid-stream is swapped in, then the job fails once after a checkpoint that followed the swap
 * and restarts from it. The checkpointed collect sink then holds exactly one prediction per input, each equal to the
 * reference of the model and version it names, and the swapped model serves its swapped version again after the
 * restore.
 */
class ManyModelsUpdatesJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final TypeInformation<Tuple3<Long, String, float[]>> SCORED =
            Types.TUPLE(Types.LONG, Types.STRING, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final int RECORDS = 3000;
    private static final TestModels.Mlp A1 = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp A2 = new TestModels.Mlp(4, 8, 2, 2);
    private static final TestModels.Mlp B1 = new TestModels.Mlp(4, 8, 2, 11);
    private static final AtomicInteger FAILURES = new AtomicInteger();

    @TempDir
    Path dir;

    /** Paces the first attempt (2 ms a record), so that the swap and checkpoints land while records flow. */
    static final class PaceFirstAttempt extends RichMapFunction<Long, Long> {
        @Override
        public Long map(Long id) {
            if (getRuntimeContext().getTaskInfo().getAttemptNumber() == 0) {
                LockSupport.parkNanos(2_000_000);
            }
            return id;
        }
    }

    /** Fails the first attempt once, at its first output after a completed checkpoint taken after a v2 output. */
    static final class FailAfterSwapCheckpoint
            extends RichMapFunction<Tuple3<Long, String, float[]>, Tuple3<Long, String, float[]>>
            implements CheckpointedFunction, CheckpointListener {
        private transient boolean sawSwap;
        private transient Set<Long> checkpointsAfterSwap;
        private transient boolean armed;

        @Override
        public void initializeState(FunctionInitializationContext context) {
            checkpointsAfterSwap = new HashSet<>();
        }

        @Override
        public Tuple3<Long, String, float[]> map(Tuple3<Long, String, float[]> p) {
            if (armed && getRuntimeContext().getTaskInfo().getAttemptNumber() == 0) {
                armed = false;
                FAILURES.incrementAndGet();
                throw new IllegalStateException("injected failure after a checkpoint that followed the swap");
            }
            sawSwap |= p.f1.equals("v2");
            return p;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) {
            if (sawSwap) {
                checkpointsAfterSwap.add(context.getCheckpointId());
            }
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            armed |= checkpointsAfterSwap.contains(checkpointId);
        }
    }

    @Test
    void afterAFailoverFollowingASwapEachInputHasOnePredictionEqualToTheVersionItNames() throws Exception {
        FAILURES.set(0);
        Path a = Files.createDirectories(dir.resolve("a"));
        Path b = Files.createDirectories(dir.resolve("b"));
        A1.writeTo(Files.createDirectories(a.resolve("v1")).resolve("model.onnx"));
        Path b1 = B1.writeTo(Files.createDirectories(b.resolve("v1")).resolve("model.onnx"));

        Configuration conf = new Configuration();
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(50));
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ZERO);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);

        String folderA = a.toString();
        String folderB = b.toString();
        OnnxInferenceSpec<Long, Tuple3<Long, String, float[]>> spec = OnnxInference.<Long>builder(b1.toString())
                .encoder((id, row) -> row.put("x", TestModels.features(id.intValue(), 4)))
                .decoder((id, out) -> Tuple3.of(id, out.modelVersion(), out.floats("y")), SCORED)
                .build();
        SingleOutputStreamOperator<Tuple3<Long, String, float[]>> scored = OnnxInference.batchedPerModel(
                env.fromSequence(0, RECORDS - 1)
                        .setParallelism(1)
                        .map(new PaceFirstAttempt())
                        .setParallelism(1)
                        .rebalance(),
                id -> ModelRef.watch(id % 2 == 0 ? folderA : folderB),
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(16)
                        .maxBatchDelay(Duration.ofMillis(5))
                        .build(),
                ModelCache.defaults(),
                ModelUpdates.builder().pollInterval(Duration.ofMillis(100)).build());
        CloseableIterator<Tuple3<Long, String, float[]>> predictions = scored.map(new FailAfterSwapCheckpoint())
                .setParallelism(1)
                .returns(SCORED)
                .collectAsync();
        CloseableIterator<ModelUpdateReport> reports =
                scored.getSideOutput(ModelUpdateReport.TAG).collectAsync();
        JobClient job = env.executeAsync("many models: swap, then failover");

        Map<Long, Tuple3<Long, String, float[]>> byId = new HashMap<>();
        int duplicates = 0;
        Tuple3<Long, String, float[]> first = predictions.next(); // checkpointed: v1 serves
        byId.put(first.f0, first);
        A2.writeTo(Files.createDirectories(a.resolve("v2")).resolve("model.onnx"));

        List<Tuple3<Long, String, float[]>> rest = FlinkClusters.drain(predictions);
        job.getJobExecutionResult().get(120, TimeUnit.SECONDS);
        List<ModelUpdateReport> updates = FlinkClusters.drain(reports);
        for (Tuple3<Long, String, float[]> p : rest) {
            if (byId.put(p.f0, p) != null) {
                duplicates++;
            }
        }
        assertThat(FAILURES.get()).as("injected failures").isEqualTo(1);
        assertThat(duplicates).as("predictions of one input twice").isZero();
        assertThat(byId).as("one prediction per input").hasSize(RECORDS);
        int byA2 = 0;
        for (Tuple3<Long, String, float[]> p : byId.values()) {
            boolean ofA = p.f0 % 2 == 0;
            TestModels.Mlp version;
            if (ofA) {
                assertThat(p.f1).isIn("v1", "v2");
                version = p.f1.equals("v2") ? A2 : A1;
                byA2 += p.f1.equals("v2") ? 1 : 0;
            } else {
                assertThat(p.f1).isEqualTo("v1");
                version = B1;
            }
            float[] expected = version.reference(TestModels.features(p.f0.intValue(), 4));
            for (int k = 0; k < expected.length; k++) {
                assertThat(p.f2[k]).as("record %d by %s", p.f0, p.f1).isCloseTo(expected[k], within(1e-5f));
            }
        }
        assertThat(byA2).as("records of a scored by v2").isPositive();
        assertThat(updates)
                .as("after the failover a serves the swapped version again")
                .anySatisfy(r -> {
                    assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.RESTORED);
                    assertThat(r.model).isEqualTo(folderA);
                    assertThat(r.version).isEqualTo("v2");
                });
        assertThat(updates).as("no older version is promoted again").noneSatisfy(r -> {
            assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.PROMOTED);
            assertThat(r.version).isEqualTo("v1");
        });
    }
}
