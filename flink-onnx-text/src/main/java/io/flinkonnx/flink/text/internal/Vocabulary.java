package io.flinkonnx.flink.text.internal;

import java.io.IOException;
import java.util.Iterator;
import org.apache.flink.annotation.Internal;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/** The size of a Hugging Face {@code tokenizer.json}'s vocabulary: its highest token id plus one. */
@Internal
final class Vocabulary {
    private Vocabulary() {}

    /**
     * The highest id of the model's vocabulary ({@code model.vocab}: an object of token -> id for WordPiece, BPE
     * and WordLevel, a list of [token, score] for Unigram) and of {@code added_tokens}, plus one.
     */
    static long size(byte[] json, String uri) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException("The tokenizer " + uri + " is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.path("model").isObject()) {
            throw new IllegalArgumentException(
                    "The tokenizer " + uri + " is not a Hugging Face tokenizer.json: it has" + " no \"model\" object");
        }
        long max = -1;
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {
            for (Iterator<JsonNode> ids = vocab.elements(); ids.hasNext(); ) {
                max = Math.max(max, ids.next().asLong(-1));
            }
        } else if (vocab.isArray()) {
            max = vocab.size() - 1L;
        }
        for (JsonNode added : root.path("added_tokens")) {
            max = Math.max(max, added.path("id").asLong(-1));
        }
        return max + 1;
    }
}
