package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.text.Pooling;
import io.flinkonnx.flink.text.TextEncoder;
import io.flinkonnx.flink.text.Truncation;
import java.time.Duration;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;

/**
 * The options of the ONNX model provider, {@code CREATE MODEL ... WITH ('provider' = 'onnx', ...)}, as Flink's
 * own model providers keep theirs: durations are {@link Duration}s written with a unit ({@code '5 ms'},
 * {@code '1 min'}); the keys ending in {@code -ms} of earlier releases still work (a bare number is
 * milliseconds).
 *
 * <pre>{@code
 * CREATE MODEL fraud INPUT (features ARRAY<FLOAT>) OUTPUT (score ARRAY<FLOAT>) WITH (
 *   'provider' = 'onnx',
 *   'path' = 's3://models/fraud.onnx',
 *   'batch.max-size' = '64',
 *   'batch.max-delay' = '5 ms');
 * }</pre>
 */
@PublicEvolving
public final class OnnxModelOptions {
    private OnnxModelOptions() {}

    public static final ConfigOption<String> PATH = ConfigOptions.key("path")
            .stringType()
            .noDefaultValue()
            .withDescription("Model URI: a path, classpath: resource or any Flink file system URI.");
    public static final ConfigOption<String> SHA256 = ConfigOptions.key("sha256")
            .stringType()
            .noDefaultValue()
            .withDescription("Expected sha256 of the model file.");
    public static final ConfigOption<String> PROVIDERS = ConfigOptions.key("providers")
            .stringType()
            .defaultValue("cpu")
            .withDescription("Execution provider chain, e.g. 'cuda(device_id=0) > cpu'.");
    public static final ConfigOption<Integer> INTRA_OP_THREADS = ConfigOptions.key("intra-op-threads")
            .intType()
            .defaultValue(1)
            .withDescription("ORT intra-op threads per session.");
    public static final ConfigOption<Boolean> EXTENSIONS = ConfigOptions.key("extensions")
            .booleanType()
            .defaultValue(false)
            .withDescription(
                    "Register the ONNX Runtime Extensions custom operators (domain ai.onnx.contrib: tokenizers,"
                            + " string and regex ops), for models that carry their pre-processing in the graph and take STRING"
                            + " columns directly. Needs com.microsoft.onnxruntime:onnxruntime-extensions:0.13.0 on the class"
                            + " path (in the SQL Client's lib/, beside onnxruntime).");
    public static final ConfigOption<Integer> BATCH_MAX_SIZE = ConfigOptions.key("batch.max-size")
            .intType()
            .defaultValue(32)
            .withDescription("Rows per ORT run in the asynchronous runtime.");
    public static final ConfigOption<Duration> BATCH_MAX_DELAY = ConfigOptions.key("batch.max-delay")
            .durationType()
            .defaultValue(Duration.ofMillis(5))
            .withDeprecatedKeys("batch.max-delay-ms") // a number without a unit reads as milliseconds
            .withDescription("How long the asynchronous runtime waits to fill a batch ('5 ms'; at least 0).");
    public static final ConfigOption<String> DRIFT_GOLDEN_VECTORS = ConfigOptions.key("drift.golden-vectors")
            .stringType()
            .noDefaultValue()
            .withDescription("Folder of ONNX test_data_set_N golden vectors, checked at start and on an interval"
                    + " (reported as gauges and in the log: SQL has no side outputs).");
    public static final ConfigOption<Duration> DRIFT_INTERVAL = ConfigOptions.key("drift.interval")
            .durationType()
            .defaultValue(Duration.ofMinutes(10))
            .withDeprecatedKeys("drift.interval-ms") // a number without a unit reads as milliseconds
            .withDescription("How often the golden vectors are checked again ('10 min').");
    public static final ConfigOption<Boolean> FAIL_ON_CPU_FALLBACK = ConfigOptions.key("fail-on-cpu-fallback")
            .booleanType()
            .defaultValue(false)
            .withDescription("Fail when an accelerator was asked for and nodes fall to CPU.");

    public static final ConfigOption<OnError> ON_ERROR = ConfigOptions.key("on-error")
            .enumType(OnError.class)
            .defaultValue(OnError.FAIL)
            .withDescription("What a row the model cannot score does: FAIL the job (default), NULL (emitted with NULL"
                    + " outputs and the reason in 'error-column'), SKIP (dropped). The rest of the batch is scored.");
    public static final ConfigOption<String> ERROR_COLUMN = ConfigOptions.key("error-column")
            .stringType()
            .noDefaultValue()
            .withDescription("A STRING column of the model's OUTPUT bound to no ONNX output: the reason a row was not"
                    + " scored, NULL when it was.");

    public static final ConfigOption<String> MODEL_VERSION = ConfigOptions.key("model-version")
            .stringType()
            .noDefaultValue()
            .withDescription("A label for the model's version: logged when the model is loaded, in the 'model_version'"
                    + " metric variable, and in 'model-version-column' if one is declared.");
    public static final ConfigOption<String> MODEL_VERSION_COLUMN = ConfigOptions.key("model-version-column")
            .stringType()
            .noDefaultValue()
            .withDescription("A STRING column of the model's OUTPUT bound to no ONNX output: the 'model-version' (or,"
                    + " without one, the model's sha256) that scored the row.");

    public static final ConfigOption<Duration> WATCH_INTERVAL = ConfigOptions.key("watch.interval")
            .durationType()
            .noDefaultValue()
            .withDescription("Serve the newest version of the folder 'path' names, polled at this interval ('1 min'):"
                    + " v7/model.onnx or fraud-7.onnx, highest number first; a version that does not load, has"
                    + " another signature or fails the golden vectors in its folder is refused and the current one"
                    + " serves on. Rows name the version in 'model-version-column'.");

    public static final ConfigOption<Boolean> WATCH_GOLDEN_VECTORS_GATE = ConfigOptions.key("watch.golden-vectors-gate")
            .booleanType()
            .defaultValue(true)
            .withDescription("With 'watch.interval': whether golden vectors in a version's folder must pass before it"
                    + " serves.");

    public static final ConfigOption<String> TOKENIZER = ConfigOptions.key("tokenizer")
            .stringType()
            .noDefaultValue()
            .withDescription(
                    "A text model's Hugging Face tokenizer.json (a path, classpath: resource or Flink file system"
                            + " URI). INPUT is then the text, a STRING column (two: a text pair); OUTPUT is (embedding"
                            + " ARRAY<FLOAT>) or (label STRING, score FLOAT).");
    public static final ConfigOption<Integer> MAX_LENGTH = ConfigOptions.key("max-length")
            .intType()
            .defaultValue(TextEncoder.DEFAULT_MAX_LENGTH)
            .withDescription("With 'tokenizer': the most tokens per text, special tokens included (at least 2).");
    public static final ConfigOption<Truncation> TRUNCATION = ConfigOptions.key("truncation")
            .enumType(Truncation.class)
            .defaultValue(Truncation.TRUNCATE)
            .withDescription("With 'tokenizer': a longer text is cut to 'max-length' (TRUNCATE) or refused (REFUSE,"
                    + " handled by 'on-error').");
    public static final ConfigOption<Pooling> POOLING = ConfigOptions.key("pooling")
            .enumType(Pooling.class)
            .defaultValue(Pooling.MEAN)
            .withDescription("With an embedding OUTPUT: MEAN of the token vectors under the attention mask, or CLS (the"
                    + " first token's). A [batch, hidden] output is taken as is.");
    public static final ConfigOption<Boolean> NORMALIZE = ConfigOptions.key("normalize")
            .booleanType()
            .defaultValue(false)
            .withDescription("With an embedding OUTPUT: scale each embedding to unit L2 norm.");
    public static final ConfigOption<String> TEXT_OUTPUT = ConfigOptions.key("text-output")
            .stringType()
            .noDefaultValue()
            .withDescription("With 'tokenizer': the ONNX output to read (default last_hidden_state for an embedding,"
                    + " logits for a label).");
    public static final ConfigOption<String> LABELS_CONFIG = ConfigOptions.key("labels.config")
            .stringType()
            .noDefaultValue()
            .withDescription(
                    "With a label OUTPUT: the model's Hugging Face config.json, whose id2label names the labels"
                            + " (without it and 'labels': LABEL_0, LABEL_1, ...).");
    public static final ConfigOption<String> LABELS = ConfigOptions.key("labels")
            .stringType()
            .noDefaultValue()
            .withDescription("With a label OUTPUT: the label names in the logits' order, comma-separated.");
}
