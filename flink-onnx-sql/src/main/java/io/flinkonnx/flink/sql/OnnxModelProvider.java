package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.versions.ModelServing;
import java.time.Duration;
import org.apache.flink.annotation.Internal;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.ml.AsyncPredictRuntimeProvider;
import org.apache.flink.table.ml.PredictRuntimeProvider;

/**
 * Both runtimes of the {@code onnx} model provider. The asynchronous one adapts to Flink's async options
 * (the query's {@code ML_PREDICT(..., MAP[...])}, else the table config's
 * {@code table.exec.async-ml-predict.*}): it gathers at most {@code 'max-concurrent-operations'} rows (more
 * can never be in flight, so waiting for more would only add the batch delay) and waits at most a quarter of
 * {@code 'timeout'} to fill a batch.
 */
@Internal
public final class OnnxModelProvider implements PredictRuntimeProvider, AsyncPredictRuntimeProvider {
    /** Flink's ML_PREDICT runtime options (MLPredictRuntimeConfigOptions), read from the query's MAP. */
    static final ConfigOption<Integer> MAX_CONCURRENT_OPERATIONS =
            ConfigOptions.key("max-concurrent-operations").intType().noDefaultValue();

    static final ConfigOption<Duration> TIMEOUT =
            ConfigOptions.key("timeout").durationType().noDefaultValue();

    /** The table config's defaults of the same options (ExecutionConfigOptions), used when the MAP has none. */
    static final ConfigOption<Integer> TABLE_MAX_CONCURRENT_OPERATIONS = ConfigOptions.key(
                    "table.exec.async-ml-predict.max-concurrent-operations")
            .intType()
            .defaultValue(10);

    static final ConfigOption<Duration> TABLE_TIMEOUT = ConfigOptions.key("table.exec.async-ml-predict.timeout")
            .durationType()
            .defaultValue(Duration.ofMinutes(3));

    private final OnnxInferenceSpec<Object[], RowData> spec;
    private final SqlBinding binding;
    private final int batchSize;
    private final int batchDelayMillis;
    private final OnError onError;
    private final String version;
    private final int tableCapacity;
    private final Duration tableTimeout;
    /** Null unless the model is served from a watched folder ('watch.interval'). */
    private final ModelUpdates updates;

    /**
     * @param version the 'model-version' label, or null: the sha256 of the session that scores; with
     *     {@code updates}, the watched folder's label of the version planned
     * @param tableCapacity the table config's rows in flight, for queries whose MAP does not set them
     * @param tableTimeout the table config's timeout, likewise
     * @param updates the watched folder the model's versions come from, or null for one fixed model
     */
    public OnnxModelProvider(
            OnnxInferenceSpec<Object[], RowData> spec,
            SqlBinding binding,
            int batchSize,
            int batchDelayMillis,
            OnError onError,
            String version,
            int tableCapacity,
            Duration tableTimeout,
            ModelUpdates updates) {
        this.updates = updates;
        this.spec = spec;
        this.binding = binding;
        this.batchSize = batchSize;
        this.batchDelayMillis = batchDelayMillis;
        this.onError = onError;
        this.version = version;
        this.tableCapacity = tableCapacity;
        this.tableTimeout = tableTimeout;
    }

    @Override
    public PredictFunction createPredictFunction(Context context) {
        return new OnnxPredictFunction(spec, binding, onError, version, updates);
    }

    @Override
    public AsyncPredictFunction createAsyncPredictFunction(Context context) {
        ReadableConfig runtime = context.runtimeConfig();
        int capacity = runtime.getOptional(MAX_CONCURRENT_OPERATIONS).orElse(tableCapacity);
        int size = Math.max(1, Math.min(batchSize, capacity));
        Duration timeout = runtime.getOptional(TIMEOUT).orElse(tableTimeout);
        int delay = (int) Math.min(batchDelayMillis, timeout.toMillis() / 4);
        return new OnnxAsyncPredictFunction(spec, binding, size, delay, onError, version, updates);
    }

    @Override
    public OnnxModelProvider copy() {
        return new OnnxModelProvider(
                spec, binding, batchSize, batchDelayMillis, onError, version, tableCapacity, tableTimeout, updates);
    }

    /** The runtime's metric group: the library's, under a {@code model_version} variable when a label is set. */
    static MetricGroup metricGroup(FunctionContext context, String version) {
        MetricGroup metrics = context.getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        return version == null ? metrics : metrics.addGroup("model_version", version);
    }

    /**
     * Opens the serving handle of an ML_PREDICT runtime (runs of up to {@code rows} rows): the model, or with
     * {@code updates} the versions of its watched folder, the first named {@code version} (the plan's label); its
     * golden vectors are checked at open and, through {@link ModelServing#beforeRun}, when due between runs.
     */
    static ModelServing<Object[], RowData> serving(
            OnnxInferenceSpec<Object[], RowData> spec, int rows, ModelUpdates updates, String version) {
        return new ModelServing<Object[], RowData>(
                        spec, BatchPolicy.builder().maxBatchSize(rows).build(), updates, InferenceRunner::new)
                .initialLabel(updates == null ? null : version);
    }

    /** {@link ModelServing#beforeRun}, its failure unchecked: the runner to score the next row or batch with. */
    static InferenceRunner<Object[], RowData> beforeRun(ModelServing<Object[], RowData> serving) {
        try {
            return serving.beforeRun();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(
                    "Model " + serving.runner().spec().model().uri() + " could not swap in a new version", e);
        }
    }

    /** The version every row names: the 'model-version' label, else the sha256 of the session that scores. */
    static String scoredVersion(String version, InferenceRunner<?, ?> runner) {
        return version != null ? version : runner.session().modelSha256();
    }
}
