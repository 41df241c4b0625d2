package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.OnnxInferenceSpec;
import java.time.Duration;
import java.util.Optional;
import org.apache.flink.annotation.Internal;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.ml.AsyncPredictRuntimeProvider;
import org.apache.flink.table.ml.PredictRuntimeProvider;

/**
 * Both runtimes of the {@code onnx} model provider. The asynchronous one adapts to the query's
 * {@code ML_PREDICT(..., MAP[...])} options: it gathers at most {@code 'max-concurrent-operations'} rows
 * (more can never be in flight) and waits at most a quarter of {@code 'timeout'} to fill a batch, so that a
 * short timeout is not spent waiting for rows.
 */
@Internal
public final class OnnxModelProvider implements PredictRuntimeProvider, AsyncPredictRuntimeProvider {
    /** Flink's ML_PREDICT runtime options (MLPredictRuntimeConfigOptions), read from the query's MAP. */
    static final ConfigOption<Integer> MAX_CONCURRENT_OPERATIONS =
            ConfigOptions.key("max-concurrent-operations").intType().noDefaultValue();

    static final ConfigOption<Duration> TIMEOUT =
            ConfigOptions.key("timeout").durationType().noDefaultValue();

    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final int batchSize;
    private final int batchDelayMillis;
    private final OnError onError;
    private final String version;

    public OnnxModelProvider(
            OnnxInferenceSpec<Object[], RowData> spec,
            SqlBinding binding,
            int batchSize,
            int batchDelayMillis,
            OnError onError,
            String version) {
        this.spec = spec;
        this.binding = binding;
        this.batchSize = batchSize;
        this.batchDelayMillis = batchDelayMillis;
        this.onError = onError;
        this.version = version;
    }

    @Override
    public PredictFunction createPredictFunction(Context context) {
        return new OnnxPredictFunction(spec, binding, onError, version);
    }

    @Override
    public AsyncPredictFunction createAsyncPredictFunction(Context context) {
        ReadableConfig runtime = context.runtimeConfig();
        int size = runtime.getOptional(MAX_CONCURRENT_OPERATIONS)
                .map(n -> Math.max(1, Math.min(batchSize, n)))
                .orElse(batchSize);
        Optional<Duration> timeout = runtime.getOptional(TIMEOUT);
        int delay = timeout.map(t -> (int) Math.min(batchDelayMillis, t.toMillis() / 4))
                .orElse(batchDelayMillis);
        return new OnnxAsyncPredictFunction(spec, binding, size, delay, onError, version);
    }

    @Override
    public OnnxModelProvider copy() {
        return new OnnxModelProvider(spec, binding, batchSize, batchDelayMillis, onError, version);
    }
}
