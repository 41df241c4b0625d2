package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.OnnxInferenceSpec;
import org.apache.flink.annotation.Internal;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.ml.AsyncPredictRuntimeProvider;
import org.apache.flink.table.ml.PredictRuntimeProvider;

/** Both runtimes of the {@code onnx} model provider. */
@Internal
public final class OnnxModelProvider implements PredictRuntimeProvider, AsyncPredictRuntimeProvider {
    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final int batchSize;
    private final int batchDelayMillis;
    private final OnError onError;

    public OnnxModelProvider(
            OnnxInferenceSpec<Object[], RowData> spec,
            SqlBinding binding,
            int batchSize,
            int batchDelayMillis,
            OnError onError) {
        this.spec = spec;
        this.binding = binding;
        this.batchSize = batchSize;
        this.batchDelayMillis = batchDelayMillis;
        this.onError = onError;
    }

    @Override
    public PredictFunction createPredictFunction(Context context) {
        return new OnnxPredictFunction(spec, binding, onError);
    }

    @Override
    public AsyncPredictFunction createAsyncPredictFunction(Context context) {
        return new OnnxAsyncPredictFunction(spec, binding, batchSize, batchDelayMillis, onError);
    }

    @Override
    public OnnxModelProvider copy() {
        return new OnnxModelProvider(spec, binding, batchSize, batchDelayMillis, onError);
    }
}
