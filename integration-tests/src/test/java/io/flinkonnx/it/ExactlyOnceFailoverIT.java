package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelRef;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The batching operator under checkpointing with a failure injected after a checkpoint completed: every
 * input id gets exactly one prediction in a two-phase sink, none missing, none twice.
 */
class ExactlyOnceFailoverIT {
    private static final long RECORDS = 200_000;
    private static final AtomicInteger FAILURES = new AtomicInteger();

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @TempDir
    Path dir;

    /** Fails the first attempt at its first record after a checkpoint completed, so buffers were in flight. */
    static final class FailAfterFirstCheckpoint extends RichMapFunction<Long, Long> implements CheckpointListener {
        private volatile boolean checkpointed;

        @Override
        public Long map(Long id) {
            if (checkpointed
                    && getRuntimeContext().getTaskInfo().getAttemptNumber() == 0
                    && getRuntimeContext().getTaskInfo().getIndexOfThisSubtask() == 0) {
                FAILURES.incrementAndGet();
                throw new IllegalStateException("injected failure after a completed checkpoint");
            }
            return id;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpointed = true;
        }
    }

    /**
     * Holds the first 2,000 records of each attempt back (1 ms each, checkpoint mails still run between
     * records), or fewer if a checkpoint completes first, so that checkpoints (every 20 ms) complete while
     * records are in flight however fast the machine is; the failure then comes after one of them.
     */
    static final class HoldBackUntilFirstCheckpoint extends RichMapFunction<Long, Long> implements CheckpointListener {
        private volatile boolean checkpointed;
        private int held;

        @Override
        public Long map(Long id) {
            if (!checkpointed && held++ < 2_000) {
                LockSupport.parkNanos(1_000_000);
            }
            return id;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpointed = true;
        }
    }

    @Test
    void everyInputGetsExactlyOnePredictionAcrossAFailover() throws Exception {
        runWithFailover(false);
    }

    /** The same with four models in one operator (a model per record), each with its own buffer. */
    @Test
    void everyInputGetsExactlyOnePredictionAcrossAFailoverWithSeveralModelsBuffered() throws Exception {
        runWithFailover(true);
    }

    private void runWithFailover(boolean perModel) throws Exception {
        CommittingSink.reset();
        FAILURES.set(0);
        TestModels.Mlp mlp = new TestModels.Mlp(8, 16, 2);
        String model = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
        for (int m = 0; m < 4; m++) {
            new TestModels.Mlp(8, 16, 2, m + 1).writeTo(dir.resolve("mlp-" + m + ".onnx"));
        }
        String folder = dir.toString();

        Configuration conf = new Configuration();
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(20));
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ZERO);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(4);

        OnnxInferenceSpec<Long, Long> spec = OnnxInference.<Long>builder(model)
                .encoder((id, row) -> row.put("x", TestModels.features(id.intValue(), 8)))
                .decoder(
                        (id, out) -> {
                            if (out.floats("y").length != 2) {
                                throw new IllegalStateException("bad output");
                            }
                            return id;
                        },
                        Types.LONG)
                .build();
        // A long delay so that batches are still buffered when barriers arrive.
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(100)
                .maxBatchDelay(Duration.ofSeconds(5))
                .build();

        // Source and hold-back are chained in one task, so records wait in the source rather than in network
        // buffers, where the checkpoint barriers would queue behind them.
        DataStream<Long> ids = env.fromSequence(0, RECORDS - 1)
                .setParallelism(1)
                .map(new HoldBackUntilFirstCheckpoint())
                .setParallelism(1)
                .rebalance();
        (perModel
                        ? OnnxInference.batchedPerModel(
                                ids,
                                id -> ModelRef.of(folder + "/mlp-" + (id % 4) + ".onnx"),
                                spec,
                                policy,
                                ModelCache.builder().maxModels(4).build())
                        : OnnxInference.batched(ids, spec, policy))
                .map(new FailAfterFirstCheckpoint())
                .sinkTo(CommittingSink.ofIds());
        env.execute("exactly-once failover");

        assertThat(FAILURES.get()).as("injected failures").isEqualTo(1);
        List<Long> committed = CommittingSink.committed();
        assertThat(committed).hasSize((int) RECORDS);
        assertThat(committed.stream().sorted().collect(Collectors.toList()))
                .containsExactlyElementsOf(LongStream.range(0, RECORDS).boxed().collect(Collectors.toList()));
    }
}
