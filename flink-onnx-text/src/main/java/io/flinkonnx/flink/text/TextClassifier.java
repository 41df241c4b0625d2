package io.flinkonnx.flink.text;

import static org.apache.flink.util.Preconditions.checkArgument;

import io.flinkonnx.flink.ModelBound;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.ResultDecoder;
import io.flinkonnx.flink.text.internal.Labels;
import io.flinkonnx.flink.text.internal.Pooled;
import io.flinkonnx.model.ModelSignature;
import java.io.Serializable;
import java.util.List;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Classification from a text model's {@code logits} ({@code [batch, labels]}): softmax, then the top label and
 * its probability, named from the model's {@code config.json} ({@code id2label}), from a list, or {@code LABEL_<i>}.
 * Immutable and serializable; the label names of a {@code config.json} are read once per scoring instance.
 *
 * <pre>{@code
 * TextClassifier classifier = TextClassifier.fromConfig("s3://models/sentiment/config.json");
 * OnnxInference.<Review>builder("s3://models/sentiment/model.onnx")
 *         .encoder(TextEncoder.builder("s3://models/sentiment/tokenizer.json", Review::text).build())
 *         .decoder(classifier.decoder(), Types.POJO(TextLabel.class));
 * }</pre>
 */
@PublicEvolving
public final class TextClassifier implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The output read unless {@link #fromOutput} says otherwise: Hugging Face's {@code logits}. */
    public static final String LOGITS = "logits";

    private final String output;
    private final String config;
    private final List<String> labels;
    /** The label names, read from {@link #config} on first use in this instance. */
    private transient List<String> loaded;

    private TextClassifier(String output, String config, List<String> labels) {
        this.output = output;
        this.config = config;
        this.labels = labels;
    }

    /**
     * Label names from the model's Hugging Face {@code config.json} ({@code id2label}).
     *
     * @param configUri the {@code config.json}: a path, {@code classpath:} resource or Flink file system URI, not
     *     blank
     * @return the classifier
     * @throws IllegalArgumentException when {@code configUri} is null or blank
     */
    public static TextClassifier fromConfig(String configUri) {
        checkArgument(
                configUri != null && !configUri.isBlank(), "configUri must name a config.json, got '%s'", configUri);
        return new TextClassifier(LOGITS, configUri.trim(), null);
    }

    /**
     * Label names given in the logits' order.
     *
     * @param labels one name per logit, not empty, no null
     * @return the classifier
     * @throws IllegalArgumentException when {@code labels} is null, empty or holds a null
     */
    public static TextClassifier withLabels(List<String> labels) {
        checkArgument(
                labels != null && !labels.isEmpty() && labels.stream().allMatch(Objects::nonNull),
                "labels must name each logit, without nulls, got %s",
                labels);
        return new TextClassifier(LOGITS, null, List.copyOf(labels));
    }

    /**
     * Labels named {@code LABEL_0}, {@code LABEL_1}, ... as Hugging Face names them without a config.
     *
     * @return the classifier
     */
    public static TextClassifier unnamed() {
        return new TextClassifier(LOGITS, null, null);
    }

    /**
     * This classifier reading another output.
     *
     * @param outputName the {@code [batch, labels]} FLOAT output, not blank
     * @return a new classifier; this one is unchanged
     * @throws IllegalArgumentException when {@code outputName} is null or blank
     */
    public TextClassifier fromOutput(String outputName) {
        checkArgument(
                outputName != null && !outputName.isBlank(), "outputName must name an output, got '%s'", outputName);
        return new TextClassifier(outputName, config, labels);
    }

    /**
     * The top label of one record, from its outputs (in a decoder).
     *
     * @param outputs the record's outputs
     * @return the label with the highest probability (the first on ties)
     * @throws RecordConversionException when the output is missing, not FLOAT, or has another number of logits than
     *     there are labels
     */
    public TextLabel classify(OutputRow outputs) {
        float[] logits = outputs.floats(output);
        List<String> names = labels();
        if (names != null && logits.length != names.size()) {
            throw new RecordConversionException("Output '" + output + "' has " + logits.length + " logits per record"
                    + " but " + names.size() + " labels are named" + (config == null ? "" : " in " + config));
        }
        if (logits.length == 0) {
            throw new RecordConversionException("Output '" + output + "' has no logits for this record");
        }
        float[] p = Pooled.softmax(logits);
        int top = 0;
        for (int i = 1; i < p.length; i++) {
            if (p[i] > p[top]) {
                top = i;
            }
        }
        return new TextLabel(names == null ? "LABEL_" + top : names.get(top), top, p[top]);
    }

    /**
     * The softmax probabilities of one record's logits.
     *
     * @param outputs the record's outputs
     * @return one probability per label, summing to 1
     * @throws RecordConversionException when the output is missing or not FLOAT
     */
    public float[] probabilities(OutputRow outputs) {
        return Pooled.softmax(outputs.floats(output));
    }

    /**
     * The label names, in the logits' order (read from the {@code config.json} on first use).
     *
     * @return the names, or null for {@code LABEL_<i>}
     * @throws IllegalArgumentException when the {@code config.json} cannot be read or has no usable {@code id2label}
     */
    public List<String> labels() {
        if (labels != null || config == null) {
            return labels;
        }
        if (loaded == null) {
            loaded = Labels.fromConfig(config);
        }
        return loaded;
    }

    /**
     * Checks the model's output against the labels: FLOAT {@code [batch, n]}, {@code n} the number of labels where
     * the model fixes it.
     *
     * @param signature the model's signature
     * @param model the model's URI, for the message
     * @throws IllegalArgumentException when the output does not fit
     */
    public void check(ModelSignature signature, String model) {
        Labels.checkLogits(signature, model, output, labels(), config);
    }

    /**
     * A decoder whose result is the top label; it reads the labels and checks the output at open.
     *
     * @param <IN> the record type
     * @return the decoder (result type {@code Types.POJO(TextLabel.class)})
     */
    public <IN> ResultDecoder<IN, TextLabel> decoder() {
        return new Decoder<>(this);
    }

    /**
     * The output this classifier reads.
     *
     * @return the output name
     */
    public String outputName() {
        return output;
    }

    @Override
    public String toString() {
        return "TextClassifier{" + output + ", labels from "
                + (config != null ? config : labels != null ? labels.toString() : "LABEL_<i>") + "}";
    }

    /** The decoder of {@link #decoder()}. */
    private static final class Decoder<IN>
            implements ResultDecoder<IN, TextLabel>, ModelBound<ResultDecoder<IN, TextLabel>> {
        private static final long serialVersionUID = 1L;
        private final TextClassifier classifier;

        Decoder(TextClassifier classifier) {
            this.classifier = classifier;
        }

        @Override
        public ResultDecoder<IN, TextLabel> bind(ModelSignature signature, String model) {
            classifier.check(signature, model);
            return this;
        }

        @Override
        public TextLabel decode(IN record, OutputRow outputs) {
            return classifier.classify(outputs);
        }
    }
}
