package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.model.testing.TestModels;
import io.flinkonnx.testing.FlinkClusters;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MetricOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The TaskManager metric {@code flinkonnx.open_sessions}, read as a user reads it: from the cluster's REST API
 * ({@code /taskmanagers/<id>/metrics}), which keeps a TaskManager's metrics once its jobs are gone.
 */
class TaskManagerSessionMetricTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The REST API fetches metrics from the TaskManagers at most this often (default 10 s). */
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo(
            new Configuration().set(MetricOptions.METRIC_FETCHER_UPDATE_INTERVAL, Duration.ofMillis(100)));

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    @TempDir
    Path dir;

    @Test
    void everyTaskManagerReportsItsOpenSessionsThroughRestWhileTheJobRunsAndZeroOnceItIsCancelled() throws Exception {
        String model =
                new TestModels.Mlp(16, 16, 2).writeTo(dir.resolve("m.onnx")).toString();
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(4);
        DataGeneratorSource<float[]> features = new DataGeneratorSource<>(
                i -> TestModels.features((int) (i % 1000), 16),
                Long.MAX_VALUE,
                RateLimiterStrategy.perSecond(40),
                PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO);
        env.fromSource(features, WatermarkStrategy.noWatermarks(), "features")
                .map(new OnnxInference(model))
                .sinkTo(new DiscardingSink<>());
        JobClient job = env.executeAsync("scores until cancelled");
        try {
            // One session per slot, 4 slots on 2 TaskManagers. A MiniCluster's TaskManagers share this JVM, and
            // the metric counts the sessions of the process: each of them reports all 4.
            awaitEveryTaskManagerReports("4");
            assertThat(SessionRegistry.INSTANCE.openSessions()).isEqualTo(4);
        } finally {
            job.cancel().get(1, TimeUnit.MINUTES);
        }
        await("the job CANCELED", () -> job.getJobStatus().join() == JobStatus.CANCELED);

        awaitEveryTaskManagerReports("0");
        assertThat(SessionRegistry.INSTANCE.openSessions()).isZero();
    }

    /** Polls {@code flinkonnx.open_sessions} of every TaskManager (there are 2) until each reads {@code value}. */
    private void awaitEveryTaskManagerReports(String value) {
        AtomicReference<Map<String, String>> last = new AtomicReference<>();
        try {
            await("flinkonnx.open_sessions = " + value + " on every TaskManager", () -> {
                Map<String, String> read = readOpenSessions();
                last.set(read);
                return read.size() == 2 && read.values().stream().allMatch(value::equals);
            });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; last read: " + last.get(), e);
        }
    }

    /** TaskManager id -> {@code flinkonnx.open_sessions} as the REST API answers (null where it has none). */
    private Map<String, String> readOpenSessions() {
        Map<String, String> values = new LinkedHashMap<>();
        for (JsonNode tm : get("/taskmanagers").path("taskmanagers")) {
            String id = tm.path("id").asText();
            JsonNode metric = get("/taskmanagers/" + id + "/metrics?get=flinkonnx.open_sessions");
            values.put(id, metric.isEmpty() ? null : metric.get(0).path("value").asText());
        }
        return values;
    }

    private JsonNode get(String path) {
        Configuration client = CLUSTER.getClientConfiguration();
        URI uri = URI.create("http://" + client.get(RestOptions.ADDRESS) + ":" + client.get(RestOptions.PORT) + path);
        try {
            HttpResponse<String> r = http.send(
                    HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(5)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).as("GET %s: %s", path, r.body()).isEqualTo(200);
            return JSON.readTree(r.body());
        } catch (IOException e) {
            throw new IllegalStateException("GET " + path, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Polls {@code condition} every 50 ms until true; fails after {@link #TIMEOUT}. */
    private static void await(String what, BooleanSupplier condition) {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("Timed out after " + TIMEOUT.toSeconds() + " s waiting for: " + what);
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
        }
    }
}
