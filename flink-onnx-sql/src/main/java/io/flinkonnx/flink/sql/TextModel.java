package io.flinkonnx.flink.sql;

import static io.flinkonnx.flink.sql.OnnxModelOptions.LABELS;
import static io.flinkonnx.flink.sql.OnnxModelOptions.LABELS_CONFIG;
import static io.flinkonnx.flink.sql.OnnxModelOptions.MAX_LENGTH;
import static io.flinkonnx.flink.sql.OnnxModelOptions.NORMALIZE;
import static io.flinkonnx.flink.sql.OnnxModelOptions.POOLING;
import static io.flinkonnx.flink.sql.OnnxModelOptions.TEXT_OUTPUT;
import static io.flinkonnx.flink.sql.OnnxModelOptions.TOKENIZER;
import static io.flinkonnx.flink.sql.OnnxModelOptions.TRUNCATION;

import io.flinkonnx.flink.ModelBound;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.flink.text.SentenceEmbedding;
import io.flinkonnx.flink.text.TextClassifier;
import io.flinkonnx.flink.text.TextEncoder;
import io.flinkonnx.flink.text.TextLabel;
import io.flinkonnx.model.ModelSignature;
import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.annotation.Internal;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.data.RowData;

/**
 * A text model in SQL (a model with a {@code 'tokenizer'}): the {@link TextEncoder} of its STRING columns and the
 * decoder of its embedding or label columns, from the model's options.
 */
@Internal
final class TextModel implements Serializable {
    private static final long serialVersionUID = 1L;

    private final TextEncoder<Object[]> encoder;
    private final SentenceEmbedding embedding;
    private final TextClassifier classifier;
    private final SqlBinding binding;

    private TextModel(
            TextEncoder<Object[]> encoder, SentenceEmbedding embedding, TextClassifier classifier, SqlBinding binding) {
        this.encoder = encoder;
        this.embedding = embedding;
        this.classifier = classifier;
        this.binding = binding;
    }

    static TextModel of(String name, ReadableConfig options, SqlBinding binding) {
        if (options.get(MAX_LENGTH) < 2) {
            throw new ValidationException(
                    "Model " + name + ": 'max-length' must be >= 2 tokens, got " + options.get(MAX_LENGTH));
        }
        TextEncoder.Builder<Object[]> text = TextEncoder.<Object[]>builder(options.get(TOKENIZER), v -> (String) v[0])
                .maxLength(options.get(MAX_LENGTH))
                .truncation(options.get(TRUNCATION));
        if (binding.inputs.size() == 2) {
            text.pairText(v -> (String) v[1]);
        }
        String output = options.getOptional(TEXT_OUTPUT).orElse(null);
        if (binding.textEmbedding()) {
            refuse(name, options, "an embedding OUTPUT (ARRAY<FLOAT>)", LABELS, LABELS_CONFIG);
            SentenceEmbedding embedding =
                    SentenceEmbedding.mean().pooling(options.get(POOLING)).normalized(options.get(NORMALIZE));
            return new TextModel(
                    text.build(), output == null ? embedding : embedding.fromOutput(output), null, binding);
        }
        refuse(name, options, "a label OUTPUT (STRING)", POOLING, NORMALIZE);
        if (options.getOptional(LABELS).isPresent()
                && options.getOptional(LABELS_CONFIG).isPresent()) {
            throw new ValidationException(
                    "Model " + name + ": give the label names either in 'labels' or in" + " 'labels.config', not both");
        }
        TextClassifier classifier = options.getOptional(LABELS_CONFIG)
                .map(TextClassifier::fromConfig)
                .orElseGet(() -> options.getOptional(LABELS)
                        .map(l -> TextClassifier.withLabels(
                                Arrays.stream(l.split(",")).map(String::trim).collect(Collectors.toList())))
                        .orElseGet(TextClassifier::unnamed));
        return new TextModel(text.build(), null, output == null ? classifier : classifier.fromOutput(output), binding);
    }

    /** Text options on a model without a 'tokenizer' are a mistake worth naming. */
    static void refuseTextOptions(String name, ReadableConfig options) {
        for (ConfigOption<?> o :
                List.of(MAX_LENGTH, TRUNCATION, POOLING, NORMALIZE, TEXT_OUTPUT, LABELS, LABELS_CONFIG)) {
            if (options.getOptional(o).isPresent()) {
                throw new ValidationException("Model " + name + ": '" + o.key() + "' is an option of text models; set"
                        + " 'tokenizer' to the model's tokenizer.json");
            }
        }
    }

    private static void refuse(String name, ReadableConfig options, String kind, ConfigOption<?>... others) {
        for (ConfigOption<?> o : others) {
            if (options.getOptional(o).isPresent()) {
                throw new ValidationException("Model " + name + " has " + kind + ": '" + o.key() + "' does not apply");
            }
        }
    }

    /** Checks the model (inputs, vocabulary, output) while planning: the tokenizer is loaded once and closed. */
    void check(ModelSignature signature, String model) {
        try {
            RecordEncoder<Object[]> bound = encoder.bind(signature, model);
            if (bound instanceof AutoCloseable) {
                ((AutoCloseable) bound).close();
            }
            if (embedding != null) {
                embedding.check(signature, model);
            } else {
                classifier.check(signature, model);
            }
        } catch (IllegalArgumentException e) {
            throw new ValidationException(e.getMessage(), e);
        } catch (Exception e) {
            throw new ValidationException("Model " + model + ": " + e, e);
        }
    }

    TextEncoder<Object[]> encoder() {
        return encoder;
    }

    ResultDecoder<Object[], RowData> decoder() {
        return new Decoder(this);
    }

    /** The embedding, or label and score, of one row; checks the model's output at open. */
    static final class Decoder
            implements ResultDecoder<Object[], RowData>, ModelBound<ResultDecoder<Object[], RowData>> {
        private static final long serialVersionUID = 1L;
        private final TextModel text;

        Decoder(TextModel text) {
            this.text = text;
        }

        @Override
        public ResultDecoder<Object[], RowData> bind(ModelSignature signature, String model) {
            if (text.embedding != null) {
                text.embedding.check(signature, model);
            } else {
                text.classifier.check(signature, model);
            }
            return this;
        }

        @Override
        public RowData decode(Object[] values, OutputRow outputs) {
            if (text.embedding != null) {
                return text.binding.textRow(text.embedding.embed(outputs), null, 0);
            }
            TextLabel label = text.classifier.classify(outputs);
            return text.binding.textRow(null, label.label, label.score);
        }
    }
}
