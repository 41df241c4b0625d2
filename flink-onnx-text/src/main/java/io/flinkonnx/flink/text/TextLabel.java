package io.flinkonnx.flink.text;

import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A text classifier's answer for one record: the top label, its index and its softmax probability. A Flink POJO.
 *
 * <pre>{@code
 * TextLabel top = classifier.classify(outputs); // top.label = "positive", top.score = 0.93f
 * }</pre>
 */
@PublicEvolving
public class TextLabel {
    /** The label's name ({@code config.json}'s {@code id2label}, or {@code LABEL_<id>}). */
    public String label;
    /** The label's index among the model's logits. */
    public int labelId;
    /** Its softmax probability, in [0, 1]. */
    public float score;

    /** For Flink's POJO serializer. */
    public TextLabel() {}

    /**
     * A label.
     *
     * @param label the label's name
     * @param labelId its index among the logits
     * @param score its probability
     */
    public TextLabel(String label, int labelId, float score) {
        this.label = label;
        this.labelId = labelId;
        this.score = score;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TextLabel
                && Objects.equals(label, ((TextLabel) o).label)
                && labelId == ((TextLabel) o).labelId
                && Float.compare(score, ((TextLabel) o).score) == 0;
    }

    @Override
    public int hashCode() {
        return Objects.hash(label, labelId, score);
    }

    @Override
    public String toString() {
        return label + " (" + labelId + ", " + score + ")";
    }
}
