package io.flinkonnx.flink.sql;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.flink.streaming.util.MockStreamingRuntimeContext;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ML_PREDICT's async runtime isolates a bad row the way the batching operator does (only its future
 * fails, with the operator's reason), and closing it completes every request it accepted.
 */
class AsyncPredictIsolationTest {
    @TempDir
    Path dir;

    private OnnxAsyncPredictFunction function;

    @AfterEach
    void close() throws Exception {
        if (function != null) {
            function.close();
        }
    }

    /** The gather model (its run fails for an index outside [-10, 9]) behind ML_PREDICT's async runtime. */
    private OnnxAsyncPredictFunction open(int batchSize, int batchDelayMillis) throws Exception {
        String model = TestModels.writeGather(dir.resolve("g.onnx")).toString();
        ModelSignature signature;
        try (LocalModel local = ModelSource.of(model).fetch()) {
            signature = local.signature().orElseThrow();
        }
        SqlBinding binding = SqlBinding.bind(
                "g",
                signature,
                List.of(Column.physical("idx", DataTypes.BIGINT())),
                List.of(Column.physical("row", DataTypes.ARRAY(DataTypes.FLOAT()))));
        OnnxInferenceSpec<Object[], RowData> spec = OnnxInference.<Object[]>builder(model)
                .encoder(new OnnxModelProviderFactory.SqlEncoder(binding))
                .decoder(new OnnxModelProviderFactory.SqlDecoder(binding), null)
                .buildUnchecked();
        function = new OnnxAsyncPredictFunction(spec, binding, batchSize, batchDelayMillis);
        function.open(new FunctionContext(new MockStreamingRuntimeContext(1, 0)));
        return function;
    }

    private static String outcome(CompletableFuture<Collection<RowData>> f) throws InterruptedException {
        try {
            RowData row = f.get(60, TimeUnit.SECONDS).iterator().next();
            return "row[0]=" + row.getArray(0).getFloat(0);
        } catch (ExecutionException e) {
            return "failed: " + e.getCause().getMessage();
        } catch (TimeoutException e) {
            return "never completed";
        }
    }

    @Test
    void aRowThatMakesTheRunFailFailsOnlyItsOwnFutureWithTheOperatorsReason() throws Exception {
        open(8, 60_000);
        List<CompletableFuture<Collection<RowData>>> futures = new ArrayList<>();
        long[] indices = {0, 1, 99, 3, 4, -50, 6, 7}; // 8 rows fill one gathered batch
        for (long idx : indices) {
            futures.add(function.asyncPredict(GenericRowData.of(idx)));
        }
        List<String> outcomes = new ArrayList<>();
        for (CompletableFuture<Collection<RowData>> f : futures) {
            outcomes.add(outcome(f));
        }
        assertThat(outcomes).startsWith("row[0]=0.0", "row[0]=10.0").contains("row[0]=70.0");
        assertThat(outcomes.get(2)).startsWith("failed: ONNX Runtime failed on this record:");
        assertThat(outcomes.get(5)).startsWith("failed: ONNX Runtime failed on this record:");
        assertThat(outcomes).filteredOn(o -> o.startsWith("row")).hasSize(6);
    }

    @Test
    void closeCompletesEveryAcceptedRequestAndRefusesNewOnes() throws Exception {
        open(64, 600_000); // the worker waits for its batch to fill: requests are held when close comes
        List<CompletableFuture<Collection<RowData>>> futures = new ArrayList<>();
        for (long idx = 0; idx < 3; idx++) {
            futures.add(function.asyncPredict(GenericRowData.of(idx)));
        }
        function.close();
        for (CompletableFuture<Collection<RowData>> f : futures) {
            assertThat(f).isDone();
            assertThat(outcome(f)).startsWith("failed: ML_PREDICT with model").contains("is closed");
        }
        assertThat(outcome(function.asyncPredict(GenericRowData.of(1L)))).contains("is closed");
        function = null;
    }
}
