package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** Side outputs reach their own sinks when everything is chained behind the source (no rebalance). */
class SideOutputChainingTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    static final ConcurrentLinkedQueue<Object> RECEIVED = new ConcurrentLinkedQueue<>();

    /** A sink that keeps what it receives (type-checked by the cast in write). */
    static final class Keep<T> implements Sink<T> {
        private final Class<T> type;

        Keep(Class<T> type) {
            this.type = type;
        }

        @Override
        public SinkWriter<T> createWriter(WriterInitContext context) {
            return new SinkWriter<>() {
                @Override
                public void write(T element, Context context) {
                    RECEIVED.add(type.cast(element));
                }

                @Override
                public void flush(boolean endOfInput) {}

                @Override
                public void close() {}
            };
        }
    }

    @TempDir
    Path dir;

    @Test
    void fallbackReportsAndPredictionsGoToTheirOwnChainedSinks() throws Exception {
        RECEIVED.clear();
        String model =
                new TestModels.Mlp(4, 4, 2).writeTo(dir.resolve("m.onnx")).toString();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        List<Long> ids = IntStream.range(0, 20).mapToObj(i -> (long) i).collect(Collectors.toList());
        DataStream<Long> input = env.fromData(ids);
        OnnxInferenceSpec<Long, Long> spec = OnnxInference.<Long>builder(model)
                .encoder((id, row) -> row.put(new float[4]))
                .decoder((id, out) -> id, Types.LONG)
                .build();
        SingleOutputStreamOperator<Long> scored = OnnxInference.batched(input, spec, BatchPolicy.defaults());
        scored.sinkTo(new Keep<>(Long.class));
        scored.getSideOutput(FallbackReport.TAG).sinkTo(new Keep<>(FallbackReport.class));
        scored.getSideOutput(DriftReport.TAG).sinkTo(new Keep<>(DriftReport.class));
        env.execute();
        assertThat(RECEIVED.stream().filter(o -> o instanceof Long)).hasSize(20);
        assertThat(RECEIVED.stream().filter(o -> o instanceof FallbackReport)).hasSize(2);
    }
}
