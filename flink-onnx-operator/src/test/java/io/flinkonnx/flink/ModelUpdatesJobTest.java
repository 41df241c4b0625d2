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
import java.util.concurrent.CountDownLatch;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model update in a real job (MiniCluster, 2 scoring subtasks): version 2 written to the watched folder
 * while the job runs reaches every subtask, and every record gets exactly one prediction, equal to the
 * reference of the version it names.
 */
class ModelUpdatesJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final TypeInformation<Tuple3<Long, String, float[]>> SCORED =
            Types.TUPLE(Types.LONG, Types.STRING, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final int RECORDS = 4000;
    private static final TestModels.Mlp V1 = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp V2 = new TestModels.Mlp(4, 8, 2, 2);
    /** Holds the second half of the records back until every subtask serves version 2. */
    private static final CountDownLatch SECOND_HALF = new CountDownLatch(1);

    @TempDir
    Path dir;

    /** Passes records on; the second half waits for the test's go (the job's own thread, not the scorer's). */
    private static final class HoldSecondHalf implements MapFunction<Long, Long> {
        @Override
        public Long map(Long id) throws Exception {
            if (id >= RECORDS / 2) {
                SECOND_HALF.await();
            }
            return id;
        }
    }

    @Test
    void aVersionWrittenToTheWatchedFolderReachesEverySubtaskAndNoRecordIsLostOrScoredTwice() throws Exception {
        Path folder = Files.createDirectories(dir.resolve("models"));
        Path v1 = V1.writeTo(Files.createDirectories(folder.resolve("v1")).resolve("model.onnx"));

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        OnnxInferenceSpec<Long, Tuple3<Long, String, float[]>> spec = OnnxInference.<Long>builder(v1.toString())
                .encoder((id, row) -> row.put("x", TestModels.features(id.intValue(), 4)))
                .decoder((id, out) -> Tuple3.of(id, out.modelVersion(), out.floats("y")), SCORED)
                .build();
        SingleOutputStreamOperator<Tuple3<Long, String, float[]>> scored = OnnxInference.batched(
                env.fromSequence(0, RECORDS - 1).map(new HoldSecondHalf()).rebalance(),
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(16)
                        .maxBatchDelay(Duration.ofMillis(5))
                        .build(),
                ModelUpdates.watch(folder.toString(), Duration.ofMillis(100)));
        CloseableIterator<Tuple3<Long, String, float[]>> predictions = scored.collectAsync();
        CloseableIterator<ModelUpdateReport> reports =
                scored.getSideOutput(ModelUpdateReport.TAG).collectAsync();
        JobClient job = env.executeAsync("model update");

        Map<Long, Tuple3<Long, String, float[]>> byId = new HashMap<>();
        int duplicates = 0;
        Tuple3<Long, String, float[]> first = predictions.next(); // v1 serves
        byId.put(first.f0, first);
        assertThat(first.f1).isEqualTo("v1");

        V2.writeTo(Files.createDirectories(folder.resolve("v2")).resolve("model.onnx"));
        Set<Integer> promoted = new HashSet<>();
        while (promoted.size() < 2) {
            ModelUpdateReport r = reports.next();
            assertThat(r.outcome).as(r.toString()).isNotEqualTo(ModelUpdateReport.Outcome.REFUSED);
            if (r.outcome == ModelUpdateReport.Outcome.PROMOTED) {
                assertThat(r.version).isEqualTo("v2");
                promoted.add(r.subtask);
            }
        }
        assertThat(promoted).containsExactlyInAnyOrder(0, 1);
        SECOND_HALF.countDown();

        List<Tuple3<Long, String, float[]>> rest = FlinkClusters.drain(predictions);
        reports.close();
        job.getJobExecutionResult().get();
        for (Tuple3<Long, String, float[]> p : rest) {
            if (byId.put(p.f0, p) != null) {
                duplicates++;
            }
        }
        assertThat(duplicates).isZero();
        assertThat(byId).hasSize(RECORDS);
        int scoredByV2 = 0;
        for (Tuple3<Long, String, float[]> p : byId.values()) {
            TestModels.Mlp version = p.f1.equals("v2") ? V2 : V1;
            assertThat(p.f1).isIn("v1", "v2");
            float[] expected = version.reference(TestModels.features(p.f0.intValue(), 4));
            for (int k = 0; k < expected.length; k++) {
                assertThat(p.f2[k]).as("record %d by %s", p.f0, p.f1).isCloseTo(expected[k], within(1e-5f));
            }
            if (p.f1.equals("v2")) {
                scoredByV2++;
            }
            if (p.f0 >= RECORDS / 2) {
                assertThat(p.f1)
                        .as("record %d came after every subtask promoted v2", p.f0)
                        .isEqualTo("v2");
            }
        }
        assertThat(scoredByV2).isGreaterThanOrEqualTo(RECORDS / 2);
    }
}
