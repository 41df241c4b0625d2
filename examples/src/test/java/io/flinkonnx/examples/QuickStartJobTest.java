package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.testing.FlinkClusters;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class QuickStartJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    @Test
    void quickStartJobScoresEveryRecordLikeTheReference() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(4);
        List<float[]> actual = QuickStartJob.score(env, 500);
        List<float[]> expected = LongStream.range(0, 500)
                .mapToObj(QuickStartJob::features)
                .map(DemoModel.MLP::reference)
                .collect(Collectors.toList());
        Comparator<float[]> byFirst = Comparator.comparingDouble(r -> r[0]);
        actual.sort(byFirst);
        expected.sort(byFirst);
        assertThat(actual).hasSize(500);
        for (int i = 0; i < 500; i++) {
            assertThat(actual.get(i)).containsExactly(expected.get(i), within(1e-5f));
        }
    }
}
