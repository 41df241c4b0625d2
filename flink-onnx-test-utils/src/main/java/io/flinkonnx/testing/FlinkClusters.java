package io.flinkonnx.testing;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.annotation.Internal;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;

/**
 * The MiniCluster the Flink tests of every module run on (2 TaskManagers x 2 slots), and the helpers that
 * run a job and collect what it emitted.
 */
@Internal
public final class FlinkClusters {
    private FlinkClusters() {}

    /** A MiniCluster of 2 TaskManagers with 2 slots each, for a test's {@code @RegisterExtension}. */
    public static MiniClusterExtension twoByTwo() {
        return twoByTwo(new Configuration());
    }

    /** As {@link #twoByTwo()}, with {@code configuration} (e.g. a shorter REST metric fetch interval). */
    public static MiniClusterExtension twoByTwo(Configuration configuration) {
        return new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
                .setConfiguration(configuration)
                .setNumberTaskManagers(2)
                .setNumberSlotsPerTaskManager(2)
                .build());
    }

    /** Runs the job and collects every element of {@code stream}. */
    public static <T> List<T> collect(DataStream<T> stream) throws Exception {
        return drain(stream.executeAndCollect());
    }

    /**
     * Every element left in {@code it} (a stream's {@code collectAsync()}/{@code executeAndCollect()} or a
     * table result's {@code collect()}), in order; closes the iterator.
     */
    public static <T> List<T> drain(CloseableIterator<T> it) throws Exception {
        List<T> out = new ArrayList<>();
        try (it) {
            it.forEachRemaining(out::add);
        }
        return out;
    }
}
