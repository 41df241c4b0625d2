package io.flinkonnx.flink;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;

/** The MiniCluster every Flink test of this module runs on: 2 TaskManagers x 2 slots. */
final class FlinkClusters {
    private FlinkClusters() {}

    static MiniClusterExtension twoByTwo() {
        return new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
                .setNumberTaskManagers(2)
                .setNumberSlotsPerTaskManager(2)
                .build());
    }

    /** Runs the job and collects every element of {@code stream}. */
    static <T> List<T> collect(DataStream<T> stream) throws Exception {
        List<T> out = new ArrayList<>();
        try (CloseableIterator<T> it = stream.executeAndCollect()) {
            it.forEachRemaining(out::add);
        }
        return out;
    }

    /** Rows sorted by their first value, so parallel output can be compared with a reference. */
    static List<float[]> sortedByFirst(List<float[]> rows) {
        List<float[]> copy = new ArrayList<>(rows);
        copy.sort(Comparator.comparingDouble(r -> r[0]));
        return copy;
    }
}
