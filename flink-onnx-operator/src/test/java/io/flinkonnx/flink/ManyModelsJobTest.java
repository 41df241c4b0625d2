package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A canary split in real jobs (MiniCluster): the challenger gets the asked share of keys, each prediction
 * names the model that made it and equals that model's reference, and a key goes to the same model at
 * parallelism 1 and 3 (as after a restart at another parallelism: the split depends on the key alone).
 */
class ManyModelsJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final TypeInformation<Tuple3<Long, String, float[]>> SCORED =
            Types.TUPLE(Types.LONG, Types.STRING, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final int KEYS = 4000;
    private static final TestModels.Mlp CHAMPION = new TestModels.Mlp(4, 8, 2, 1);
    private static final TestModels.Mlp CHALLENGER = new TestModels.Mlp(4, 8, 2, 2);

    @TempDir
    Path dir;

    private Map<Long, String> run(int parallelism, ModelRef champion, ModelRef challenger) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(parallelism);
        OnnxInferenceSpec<Long, Tuple3<Long, String, float[]>> spec = OnnxInference.<Long>builder(champion.uri())
                .encoder((id, row) -> row.put("x", TestModels.features(id.intValue(), 4)))
                .decoder((id, out) -> Tuple3.of(id, out.modelVersion(), out.floats("y")), SCORED)
                .build();
        List<Tuple3<Long, String, float[]>> out = FlinkClusters.collect(OnnxInference.batchedPerModel(
                env.fromSequence(0, KEYS - 1).rebalance(),
                ModelSelector.split(id -> "card-" + id, champion, challenger, 0.1),
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(32)
                        .maxBatchDelay(Duration.ofMillis(5))
                        .build(),
                ModelCache.builder().maxModels(2).build()));
        assertThat(out).hasSize(KEYS);
        Map<Long, String> modelByKey = new HashMap<>();
        for (Tuple3<Long, String, float[]> p : out) {
            assertThat(modelByKey.put(p.f0, p.f1)).as("one prediction per key").isNull();
            TestModels.Mlp mlp = p.f1.equals("challenger") ? CHALLENGER : CHAMPION;
            float[] expected = mlp.reference(TestModels.features(p.f0.intValue(), 4));
            for (int k = 0; k < expected.length; k++) {
                assertThat(p.f2[k]).isCloseTo(expected[k], within(1e-5f));
            }
        }
        return modelByKey;
    }

    @Test
    void aCanarySplitIsTheAskedShareAndAKeyKeepsItsModelAtAnotherParallelism() throws Exception {
        ModelRef champion = ModelRef.of(
                        CHAMPION.writeTo(dir.resolve("champion.onnx")).toString())
                .withVersion("champion");
        ModelRef challenger = ModelRef.of(
                        CHALLENGER.writeTo(dir.resolve("challenger.onnx")).toString())
                .withVersion("challenger");

        Map<Long, String> atOne = run(1, champion, challenger);
        Map<Long, String> atThree = run(3, champion, challenger);

        long toChallenger = atOne.values().stream().filter("challenger"::equals).count();
        assertThat(toChallenger / (double) KEYS).isCloseTo(0.1, within(0.01));
        assertThat(atThree).isEqualTo(atOne);
        assertThat(SessionStats.open()).isZero();
    }
}
