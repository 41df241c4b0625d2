package io.flinkonnx.flink.text.internal;

import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.annotation.Internal;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;

/** A classifier's label names ({@code config.json}'s {@code id2label}) and the check of its logits output. */
@Internal
public final class Labels {
    private Labels() {}

    /** The names of {@code id2label} in id order; its ids must be 0 .. n-1. */
    public static List<String> fromConfig(String uri) {
        JsonNode id2label = TextFiles.readJson(uri, "model config").path("id2label");
        if (!id2label.isObject() || id2label.size() == 0) {
            throw new IllegalArgumentException("The model config " + uri + " has no \"id2label\" object naming the"
                    + " labels (Hugging Face writes one for classifiers)");
        }
        Map<Integer, String> byId = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = id2label.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            int id;
            try {
                id = Integer.parseInt(e.getKey().trim());
            } catch (NumberFormatException ex) {
                throw new IllegalArgumentException(
                        "The model config " + uri + " has id2label key '" + e.getKey() + "', which is not a label id");
            }
            byId.put(id, e.getValue().asText());
        }
        List<String> names = new ArrayList<>();
        for (Map.Entry<Integer, String> e : byId.entrySet()) {
            if (e.getKey() != names.size()) {
                throw new IllegalArgumentException("The model config " + uri + " has id2label ids " + byId.keySet()
                        + "; they must be 0 .. " + (byId.size() - 1));
            }
            names.add(e.getValue());
        }
        return names;
    }

    /** The logits output: FLOAT {@code [batch, n]}, {@code n} the number of labels when both are known. */
    public static void checkLogits(
            ModelSignature signature, String model, String output, List<String> labels, String config) {
        TensorSpec spec = signature
                .output(output)
                .orElseThrow(() -> new IllegalArgumentException("Model " + model + " has no output '" + output
                        + "' to classify from; its outputs: " + Pooled.names(signature.outputs())));
        if (spec.kind() != TensorSpec.Kind.TENSOR || spec.elementType() != ElementType.FLOAT) {
            throw new IllegalArgumentException(
                    "Model " + model + " output " + spec + " must be a FLOAT tensor of logits to classify from");
        }
        List<Dim> dims = spec.recordDims();
        if (dims.size() != 1) {
            throw new IllegalArgumentException("Model " + model + " output " + spec + " must be [batch, labels] logits;"
                    + " it has " + dims.size() + " dims per record");
        }
        if (labels != null && dims.get(0).isFixed() && dims.get(0).value() != labels.size()) {
            throw new IllegalArgumentException("Model " + model + " output " + spec + " has "
                    + dims.get(0).value()
                    + " logits but " + labels.size() + " labels are named" + (config == null ? "" : " in " + config)
                    + ": " + labels);
        }
    }
}
