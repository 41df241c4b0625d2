package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** {@code OnnxInference.batched} in real jobs on 2 TaskManagers x 2 slots: predictions and dead letters. */
class BatchedJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final TypeInformation<Tuple2<Long, float[]>> RECORD =
            Types.TUPLE(Types.LONG, PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);

    @TempDir
    Path dir;

    @Test
    void scoresEveryGoodRecordAndRoutesBadOnesToTheFailedRecordsOutput() throws Exception {
        TestModels.Mlp mlp = new TestModels.Mlp(16, 32, 2);
        String model = mlp.writeTo(dir.resolve("mlp.onnx")).toString();
        List<Tuple2<Long, float[]>> records = IntStream.range(0, 1000)
                .mapToObj(k -> Tuple2.of((long) k, TestModels.features(k, k % 97 == 0 ? 15 : 16)))
                .collect(Collectors.toList());

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(4);
        DataStream<Tuple2<Long, float[]>> input = env.fromData(records, RECORD).rebalance();
        OnnxInferenceSpec<Tuple2<Long, float[]>, Tuple2<Long, float[]>> spec =
                OnnxInference.<Tuple2<Long, float[]>>builder(model)
                        .encoder((r, row) -> row.put("x", r.f1))
                        .decoder((r, out) -> Tuple2.of(r.f0, out.floats("y")), RECORD)
                        .build();
        SingleOutputStreamOperator<Tuple2<Long, float[]>> scored = OnnxInference.batched(
                input,
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(32)
                        .maxBatchDelay(Duration.ofMillis(5))
                        .build());
        DataStream<FailedRecord<Tuple2<Long, float[]>>> failed =
                scored.getSideOutput(FailedRecord.tag(input.getType()));

        CloseableIterator<Tuple2<Long, float[]>> scoredIt = scored.collectAsync();
        CloseableIterator<FailedRecord<Tuple2<Long, float[]>>> failedIt = failed.collectAsync();
        CloseableIterator<FallbackReport> reportIt =
                scored.getSideOutput(FallbackReport.TAG).collectAsync();
        env.execute("batched");
        List<FallbackReport> reports = FlinkClusters.drain(reportIt);
        assertThat(reports).extracting(r -> r.subtask).containsExactlyInAnyOrder(0, 1, 2, 3);
        assertThat(reports).allSatisfy(r -> {
            assertThat(r.verdict).isEqualTo(FallbackReport.Verdict.CPU_AS_REQUESTED);
            assertThat(r.nodes).extracting(n -> n.provider).containsOnly("cpu");
        });
        List<Tuple2<Long, float[]>> predictions = FlinkClusters.drain(scoredIt);
        List<FailedRecord<Tuple2<Long, float[]>>> deadLetters = FlinkClusters.drain(failedIt);

        List<Long> bad = IntStream.range(0, 1000)
                .filter(k -> k % 97 == 0)
                .mapToObj(k -> (long) k)
                .collect(Collectors.toList());
        assertThat(deadLetters).extracting(f -> f.record.f0).containsExactlyInAnyOrderElementsOf(bad);
        assertThat(deadLetters).allSatisfy(f -> assertThat(f.reason).contains("expects 16 values per record"));
        assertThat(predictions).hasSize(1000 - bad.size());
        for (Tuple2<Long, float[]> p : predictions) {
            assertThat(p.f1).containsExactly(mlp.reference(TestModels.features(p.f0.intValue(), 16)), within(1e-5f));
        }
        assertThat(SessionStats.open()).isZero();
    }
}
