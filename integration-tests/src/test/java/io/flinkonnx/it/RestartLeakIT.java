package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job that fails and restarts 20 times must not leave sessions open nor grow the process: every
 * OnnxTensor, Result, session and options object is closed on the failure paths too.
 */
class RestartLeakIT {
    private static final int RESTARTS = 20;

    @RegisterExtension
    static final MiniClusterExtension CLUSTER = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(2)
            .setNumberSlotsPerTaskManager(2)
            .build());

    @TempDir Path dir;

    /** Fails every attempt before {@link #RESTARTS}, after the scoring operators have run. */
    static final class FailUntilLastAttempt extends RichMapFunction<float[], float[]> {
        private int seen;

        @Override
        public float[] map(float[] value) {
            if (++seen == 50 && getRuntimeContext().getTaskInfo().getAttemptNumber() < RESTARTS) {
                throw new IllegalStateException("injected failure, attempt "
                        + getRuntimeContext().getTaskInfo().getAttemptNumber());
            }
            return value;
        }
    }

    private void runJobThatRestarts(String model) throws Exception {
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, RESTARTS);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ZERO);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(4);
        env.fromSequence(0, 2_000)
                .map(k -> TestModels.features(k.intValue(), 256))
                .rebalance()
                .map(new OnnxInference(model))
                .map(new FailUntilLastAttempt())
                .sinkTo(new DiscardingSink<>());
        env.execute("restarts " + RESTARTS + " times");
    }

    @Test
    void twentyRestartsLeaveNoSessionOpenAndDoNotGrowTheProcess() throws Exception {
        // ~2 MB of weights per session, so a leaked session per restart and slot would show in RSS.
        String model = new TestModels.Mlp(256, 1024, 256).writeTo(dir.resolve("big-mlp.onnx")).toString();

        runJobThatRestarts(model); // warm-up: class loading, JIT, allocator arenas, Flink's own pools
        long rssAfterWarmUp = residentSetBytes();
        long createdBefore = SessionStats.created();

        runJobThatRestarts(model);
        long rssAfter = residentSetBytes();
        long created = SessionStats.created() - createdBefore;

        System.out.printf("RestartLeakIT: %d sessions opened over %d restarts; RSS %d MB -> %d MB%n", created,
                RESTARTS, rssAfterWarmUp >> 20, rssAfter >> 20);
        assertThat(SessionStats.open()).isZero();
        assertThat(SessionStats.references()).isZero();
        assertThat(SessionStats.closed()).isEqualTo(SessionStats.created());
        assertThat(created).as("sessions opened across %d attempts", RESTARTS + 1).isGreaterThanOrEqualTo(RESTARTS + 1);
        if (rssAfterWarmUp > 0) {
            assertThat(rssAfter - rssAfterWarmUp).as("RSS growth over %d restarts", RESTARTS)
                    .isLessThan(96L << 20);
        }
    }

    /** VmRSS from /proc (Linux, where CI runs); 0 elsewhere. */
    private static long residentSetBytes() throws Exception {
        System.gc();
        Path status = Path.of("/proc/self/status");
        if (!Files.exists(status)) {
            return 0;
        }
        for (String line : Files.readAllLines(status)) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return 0;
    }
}
