package io.flinkonnx.flink.sql;

import static io.flinkonnx.flink.sql.OnnxModelOptions.*;

import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.flink.versions.ModelFolder;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.util.Set;
import org.apache.flink.annotation.Internal;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.factories.ModelProviderFactory;
import org.apache.flink.table.ml.ModelProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code 'provider' = 'onnx'} model provider of Flink SQL: ONNX models scored in-process by ML_PREDICT.
 *
 * <pre>
 * CREATE MODEL fraud INPUT (features ARRAY&lt;FLOAT&gt;) OUTPUT (probabilities ARRAY&lt;FLOAT&gt;)
 * WITH ('provider' = 'onnx', 'path' = 's3://models/fraud.onnx', 'providers' = 'cuda &gt; cpu');
 * SELECT * FROM ML_PREDICT(TABLE transactions, MODEL fraud, DESCRIPTOR(features));
 * </pre>
 *
 * <p>The INPUT/OUTPUT schema is checked against the ONNX signature when the query is planned. Both the
 * synchronous and the asynchronous runtime are offered; the asynchronous one (ML_PREDICT's default)
 * gathers concurrent rows into one ORT run.
 */
@Internal
public class OnnxModelProviderFactory implements ModelProviderFactory {
    private static final Logger LOG = LoggerFactory.getLogger(OnnxModelProviderFactory.class);
    public static final String IDENTIFIER = "onnx";

    private String optionNames() {
        java.util.TreeSet<String> names = new java.util.TreeSet<>();
        optionalOptions().forEach(o -> names.add(o.key()));
        return String.join(", ", names);
    }

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    /**
     * None: 'path' is checked after Flink's own validation, so that a misspelt key ('pathh') is reported
     * as unsupported with the list of valid options, instead of only as a missing 'path'.
     */
    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of();
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(
                SHA256,
                PROVIDERS,
                INTRA_OP_THREADS,
                EXTENSIONS,
                BATCH_MAX_SIZE,
                BATCH_MAX_DELAY,
                FAIL_ON_CPU_FALLBACK,
                DRIFT_GOLDEN_VECTORS,
                DRIFT_INTERVAL,
                ON_ERROR,
                ERROR_COLUMN,
                PATH,
                MODEL_VERSION,
                MODEL_VERSION_COLUMN,
                WATCH_INTERVAL,
                WATCH_GOLDEN_VECTORS_GATE,
                TOKENIZER,
                MAX_LENGTH,
                TRUNCATION,
                POOLING,
                NORMALIZE,
                TEXT_OUTPUT,
                LABELS_CONFIG,
                LABELS);
    }

    @Override
    public ModelProvider createModelProvider(Context context) {
        FactoryUtil.ModelProviderFactoryHelper helper = FactoryUtil.createModelProviderFactoryHelper(this, context);
        helper.validate();
        ReadableConfig options = helper.getOptions();
        if (options.get(BATCH_MAX_SIZE) < 1 || options.get(BATCH_MAX_DELAY).isNegative()) {
            throw new ValidationException("Model "
                    + context.getObjectIdentifier().asSummaryString() + ": 'batch.max-size'"
                    + " must be >= 1 and 'batch.max-delay' >= 0, got " + options.get(BATCH_MAX_SIZE) + " and "
                    + options.get(BATCH_MAX_DELAY));
        }
        if (options.getOptional(PATH).isEmpty()) {
            throw new ValidationException(
                    "Model " + context.getObjectIdentifier().asSummaryString() + " with 'provider'"
                            + " = 'onnx' needs 'path' (a model URI: a path, classpath: resource or Flink file system URI)."
                            + " Options of this provider: " + optionNames());
        }
        String name = context.getObjectIdentifier().asSummaryString();
        ModelUpdates updates = null;
        String version = options.getOptional(MODEL_VERSION).orElse(null);
        ModelSource source = ModelSource.of(options.get(PATH));
        if (options.getOptional(WATCH_INTERVAL).isPresent()) {
            if (options.getOptional(MODEL_VERSION).isPresent()
                    || options.getOptional(SHA256).isPresent()) {
                throw new ValidationException(
                        "Model " + name + ": 'model-version' and 'sha256' name one fixed model;"
                                + " with 'watch.interval' each version is named by the folder (and pinned by its .sha256 file)");
            }
            try {
                updates = ModelUpdates.builder()
                        .watch(options.get(PATH), options.get(WATCH_INTERVAL))
                        .goldenVectorsGate(options.get(WATCH_GOLDEN_VECTORS_GATE))
                        .build();
            } catch (IllegalArgumentException e) {
                throw new ValidationException("Model " + name + ": " + e.getMessage(), e);
            }
            ModelFolder.Version newest;
            try {
                newest = ModelFolder.newest(options.get(PATH))
                        .orElseThrow(() ->
                                new ValidationException("Model " + name + ": the watched folder " + options.get(PATH)
                                        + " holds no model version yet (v1/model.onnx, fraud-1.onnx, ...)"));
            } catch (java.io.IOException e) {
                throw new ValidationException("Model " + name + ": " + e.getMessage(), e);
            }
            source = ModelSource.of(newest.modelUri);
            // The folder's label (fraud-7 for fraud-7/fraud.onnx), as every poll names this version: not the
            // model file's own default label, which would change to the folder's at the first poll.
            version = newest.label;
            if (newest.sha256 != null) {
                source = source.withSha256(newest.sha256);
            }
            LOG.info(
                    "Model {} watches {} every {}; version {} is the newest",
                    name,
                    options.get(PATH),
                    options.get(WATCH_INTERVAL),
                    newest);
        } else if (options.getOptional(SHA256).isPresent()) {
            source = source.withSha256(options.get(SHA256));
        }
        SqlBinding binding;
        TextModel text = null;
        try (LocalModel model = source.fetch()) {
            ModelSignature signature = model.signature().orElseGet(() -> SessionLoader.signatureOf(model));
            if (options.getOptional(TOKENIZER).isPresent()) {
                binding = SqlBinding.bindText(
                        name + " (" + source.uri() + ")",
                        context.getCatalogModel().getResolvedInputSchema().getColumns(),
                        context.getCatalogModel().getResolvedOutputSchema().getColumns(),
                        options.getOptional(ERROR_COLUMN).orElse(null),
                        options.getOptional(MODEL_VERSION_COLUMN).orElse(null));
                text = TextModel.of(name, options, binding);
                // Load the tokenizer once while planning: a tokenizer that does not fit fails CREATE's first query.
                text.check(signature, source.uri());
            } else {
                TextModel.refuseTextOptions(name, options);
                binding = SqlBinding.bind(
                        name + " (" + source.uri() + ")",
                        signature,
                        context.getCatalogModel().getResolvedInputSchema().getColumns(),
                        context.getCatalogModel().getResolvedOutputSchema().getColumns(),
                        options.getOptional(ERROR_COLUMN).orElse(null),
                        options.getOptional(MODEL_VERSION_COLUMN).orElse(null));
            }
            // Without a 'model-version' label, rows name the sha256 of the session that scores them (read when the
            // runtime opens: the file behind an unpinned path may change before the job runs or restarts).
            LOG.info(
                    "Model {} ({}) version {}, sha256 {} when planned",
                    name,
                    source.uri(),
                    options.getOptional(MODEL_VERSION).orElse("(its sha256)"),
                    model.sha256());
        }
        OnnxInferenceSpec.Builder<Object[], RowData> builder = OnnxInference.<Object[]>builder(source)
                .providers(ProviderChain.parse(options.get(PROVIDERS)))
                .sessionSettings(SessionSettings.builder()
                        .intraOpThreads(options.get(INTRA_OP_THREADS))
                        .onnxRuntimeExtensions(options.get(EXTENSIONS))
                        .build())
                .failOnCpuFallback(options.get(FAIL_ON_CPU_FALLBACK))
                .encoder(text == null ? new SqlEncoder(binding) : text.encoder())
                .decoder(text == null ? new SqlDecoder(binding) : text.decoder(), null);
        options.getOptional(DRIFT_GOLDEN_VECTORS)
                .ifPresent(folder -> builder.driftAgainstGoldenVectors(folder, options.get(DRIFT_INTERVAL)));
        OnnxInferenceSpec<Object[], RowData> spec = builder.buildUnchecked();
        // The query's MAP overrides these at runtime; without it Flink uses the table config's values.
        ReadableConfig tableConfig = context.getConfiguration();
        return new OnnxModelProvider(
                spec,
                binding,
                options.get(BATCH_MAX_SIZE),
                (int) Math.min(Integer.MAX_VALUE, options.get(BATCH_MAX_DELAY).toMillis()),
                options.get(ON_ERROR),
                version,
                tableConfig.get(OnnxModelProvider.TABLE_MAX_CONCURRENT_OPERATIONS),
                tableConfig.get(OnnxModelProvider.TABLE_TIMEOUT),
                updates);
    }

    public static final class SqlEncoder implements RecordEncoder<Object[]> {
        private static final long serialVersionUID = 1L;
        private final SqlBinding binding;

        SqlEncoder(SqlBinding binding) {
            this.binding = binding;
        }

        @Override
        public void encode(Object[] values, InputRow row) {
            binding.encode(values, row);
        }
    }

    public static final class SqlDecoder implements ResultDecoder<Object[], RowData> {
        private static final long serialVersionUID = 1L;
        private final SqlBinding binding;

        SqlDecoder(SqlBinding binding) {
            this.binding = binding;
        }

        @Override
        public RowData decode(Object[] values, OutputRow outputs) {
            return binding.decode(outputs);
        }
    }
}
