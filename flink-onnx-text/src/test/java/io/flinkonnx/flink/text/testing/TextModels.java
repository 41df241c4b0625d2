package io.flinkonnx.flink.text.testing;

import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.testing.OnnxGraph;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A small BERT-like text model, its WordPiece {@code tokenizer.json} and a classifier's {@code config.json}, all
 * written by code: vocabulary and weights are generated deterministically (fixed seeds), so every run writes the
 * same bytes. Shared through this module's test-jar ({@code flink-onnx-text}, type {@code test-jar}) with the
 * example and the benchmark.
 *
 * <p>The encoder model: {@code input_ids, attention_mask, token_type_ids: INT64[batch, seq]} -> word embedding +
 * token-type embedding ({@code Gather}s over initializers, {@code [vocab, hidden]} and {@code [2, hidden]}) -> one
 * masked self-attention (scores over the keys the mask keeps; masked keys get -10000 before the softmax, so padding
 * changes nothing) -> {@code MatMul + Add + Tanh} -> {@code last_hidden_state: FLOAT[batch, seq, hidden]}. The
 * classifier adds {@code logits: FLOAT[batch, labels]} from the first ({@code [CLS]}) position.
 */
public final class TextModels {
    /** Hidden size of the test models. */
    public static final int HIDDEN = 8;

    /** Labels of the classifier ({@code config.json}'s {@code id2label}). */
    public static final List<String> LABELS = List.of("negative", "neutral", "positive");

    private static final List<String> SPECIAL = List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]");
    private static final List<String> WORDS = List.of(
            "the",
            "a",
            "is",
            "was",
            "good",
            "bad",
            "great",
            "terrible",
            "movie",
            "film",
            "service",
            "order",
            "late",
            "fast",
            "love",
            "hate",
            "not",
            "very",
            "and",
            "but",
            "it",
            "this",
            "that",
            "i",
            "we",
            "you",
            "stream",
            "flink",
            "model",
            "text",
            "token",
            "ok",
            "refund",
            "please",
            "thanks",
            "help");
    private static final String PUNCTUATION = ".,!?'-:;()";

    private TextModels() {}

    /** The vocabulary, in id order: special tokens, words, letters and digits, {@code ##} pieces, punctuation. */
    public static List<String> vocabulary() {
        List<String> vocab = new ArrayList<>(SPECIAL);
        vocab.addAll(WORDS);
        for (char c = 'a'; c <= 'z'; c++) {
            vocab.add(String.valueOf(c));
        }
        for (char c = '0'; c <= '9'; c++) {
            vocab.add(String.valueOf(c));
        }
        for (char c = 'a'; c <= 'z'; c++) {
            vocab.add("##" + c);
        }
        for (char c = '0'; c <= '9'; c++) {
            vocab.add("##" + c);
        }
        for (char c : PUNCTUATION.toCharArray()) {
            vocab.add(String.valueOf(c));
        }
        return vocab;
    }

    /** The vocabulary's size: the rows of the model's word embedding. */
    public static int vocabularySize() {
        return vocabulary().size();
    }

    /**
     * Writes a Hugging Face {@code tokenizer.json} of a BERT-style WordPiece tokenizer (lower-casing BERT
     * normalizer, BERT pre-tokenizer, {@code [CLS] A [SEP]} and {@code [CLS] A [SEP] B [SEP]} templates) over
     * {@link #vocabulary()}.
     */
    public static Path writeTokenizer(Path file) throws IOException {
        return writeTokenizer(file, vocabulary());
    }

    /** {@link #writeTokenizer(Path)} over another vocabulary (to make one that does not fit the model). */
    public static Path writeTokenizer(Path file, List<String> vocab) throws IOException {
        StringBuilder json = new StringBuilder();
        json.append("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
        for (int i = 0; i < SPECIAL.size(); i++) {
            json.append(i == 0 ? "" : ",")
                    .append("{\"id\":")
                    .append(i)
                    .append(",\"content\":\"")
                    .append(SPECIAL.get(i))
                    .append("\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,")
                    .append("\"special\":true}");
        }
        json.append("],\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,")
                .append("\"strip_accents\":null,\"lowercase\":true},")
                .append("\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},")
                .append("\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[")
                .append(special("[CLS]", 0))
                .append(',')
                .append(sequence("A", 0))
                .append(',')
                .append(special("[SEP]", 0))
                .append("],\"pair\":[")
                .append(special("[CLS]", 0))
                .append(',')
                .append(sequence("A", 0))
                .append(',')
                .append(special("[SEP]", 0))
                .append(',')
                .append(sequence("B", 1))
                .append(',')
                .append(special("[SEP]", 1))
                .append("],\"special_tokens\":{")
                .append("\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[2],\"tokens\":[\"[CLS]\"]},")
                .append("\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[3],\"tokens\":[\"[SEP]\"]}}},")
                .append("\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true},")
                .append(
                        "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",")
                .append("\"max_input_chars_per_word\":100,\"vocab\":{");
        for (int i = 0; i < vocab.size(); i++) {
            json.append(i == 0 ? "" : ",")
                    .append(quote(vocab.get(i)))
                    .append(':')
                    .append(i);
        }
        json.append("}}}");
        Files.createDirectories(file.toAbsolutePath().getParent());
        return Files.writeString(file, json.toString(), StandardCharsets.UTF_8);
    }

    /** Writes a Hugging Face {@code config.json} with {@code id2label} (and {@code label2id}) of {@link #LABELS}. */
    public static Path writeConfig(Path file) throws IOException {
        StringBuilder id2label = new StringBuilder();
        StringBuilder label2id = new StringBuilder();
        for (int i = 0; i < LABELS.size(); i++) {
            id2label.append(i == 0 ? "" : ",")
                    .append('"')
                    .append(i)
                    .append("\":")
                    .append(quote(LABELS.get(i)));
            label2id.append(i == 0 ? "" : ",")
                    .append(quote(LABELS.get(i)))
                    .append(':')
                    .append(i);
        }
        String json = "{\"architectures\":[\"BertForSequenceClassification\"],\"model_type\":\"bert\",\"hidden_size\":"
                + HIDDEN + ",\"id2label\":{" + id2label + "},\"label2id\":{" + label2id + "}}";
        Files.createDirectories(file.toAbsolutePath().getParent());
        return Files.writeString(file, json, StandardCharsets.UTF_8);
    }

    /** The encoder model over {@link #vocabularySize()} rows: {@code last_hidden_state}. */
    public static Path writeEncoder(Path file) throws IOException {
        return write(file, vocabularySize(), ElementType.INT64, 0);
    }

    /** The encoder model with a word embedding of {@code vocabRows} rows. */
    public static Path writeEncoder(Path file, int vocabRows) throws IOException {
        return write(file, vocabRows, ElementType.INT64, 0);
    }

    /** The encoder model taking its three inputs as INT32, as some exporters write them. */
    public static Path writeInt32Encoder(Path file) throws IOException {
        return write(file, vocabularySize(), ElementType.INT32, 0);
    }

    /** The classifier: {@code logits: FLOAT[batch, 3]} ({@link #LABELS}) beside {@code last_hidden_state}. */
    public static Path writeClassifier(Path file) throws IOException {
        return write(file, vocabularySize(), ElementType.INT64, LABELS.size());
    }

    private static Path write(Path file, int vocabRows, ElementType idType, int labels) throws IOException {
        int h = HIDDEN;
        OnnxGraph g = new OnnxGraph(labels > 0 ? "text_classifier" : "text_encoder")
                .input("input_ids", idType, "batch", "seq")
                .input("attention_mask", idType, "batch", "seq")
                .input("token_type_ids", idType, "batch", "seq")
                .output("last_hidden_state", ElementType.FLOAT, "batch", "seq", h);
        if (labels > 0) {
            g.output("logits", ElementType.FLOAT, "batch", labels);
        }
        String ids = "input_ids";
        String types = "token_type_ids";
        String mask = "attention_mask";
        if (idType != ElementType.INT64) {
            g.node("Cast", names("input_ids"), names("ids64"), "to", (long) ElementType.INT64.onnxCode());
            g.node("Cast", names("token_type_ids"), names("types64"), "to", (long) ElementType.INT64.onnxCode());
            ids = "ids64";
            types = "types64";
        }
        g.floatInitializer("word_embeddings", weights(vocabRows * h, 11, 1.0f), vocabRows, h)
                .floatInitializer("token_type_embeddings", weights(2 * h, 12, 0.5f), 2, h)
                .floatInitializer("scale", new float[] {(float) (1 / Math.sqrt(h))})
                .floatInitializer("one", new float[] {1f})
                .floatInitializer("masked_off", new float[] {-10000f})
                .longInitializer("axis1", new long[] {1}, 1)
                .floatInitializer("w", weights(h * h, 13, 0.6f), h, h)
                .floatInitializer("b", weights(h, 14, 0.1f), h)
                .node("Gather", names("word_embeddings", ids), names("words"), "axis", 0L)
                .node("Gather", names("token_type_embeddings", types), names("typed"), "axis", 0L)
                .node("Add", names("words", "typed"), names("embedded"))
                // scores[b, i, j] = <e_i, e_j> / sqrt(h), keys j the mask drops pushed to -10000
                .node("Transpose", names("embedded"), names("keys"), "perm", new long[] {0, 2, 1})
                .node("MatMul", names("embedded", "keys"), names("raw_scores"))
                .node("Mul", names("raw_scores", "scale"), names("scaled"))
                .node("Cast", names(mask), names("mask_f"), "to", (long) ElementType.FLOAT.onnxCode())
                .node("Unsqueeze", names("mask_f", "axis1"), names("mask_keys"))
                .node("Sub", names("one", "mask_keys"), names("dropped"))
                .node("Mul", names("dropped", "masked_off"), names("bias"))
                .node("Add", names("scaled", "bias"), names("scores"))
                .node("Softmax", names("scores"), names("attention"), "axis", -1L)
                .node("MatMul", names("attention", "embedded"), names("context"))
                .node("MatMul", names("context", "w"), names("projected"))
                .node("Add", names("projected", "b"), names("pre"))
                .node("Tanh", names("pre"), names("last_hidden_state"));
        if (labels > 0) {
            g.longInitializer("first", new long[] {0})
                    .floatInitializer("wc", weights(h * labels, 15, 1.5f), h, labels)
                    .floatInitializer("bc", weights(labels, 16, 0.2f), labels)
                    .node("Gather", names("last_hidden_state", "first"), names("cls"), "axis", 1L)
                    .node("MatMul", names("cls", "wc"), names("cls_logits"))
                    .node("Add", names("cls_logits", "bc"), names("logits"));
        }
        return g.writeTo(file);
    }

    /** Deterministic weights in [-scale, scale). */
    public static float[] weights(int n, long seed, float scale) {
        Random random = new Random(seed);
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (random.nextFloat() * 2 - 1) * scale;
        }
        return w;
    }

    /** The classifier's label names by id, as {@code config.json} writes them. */
    public static Map<Integer, String> id2label() {
        Map<Integer, String> m = new LinkedHashMap<>();
        for (int i = 0; i < LABELS.size(); i++) {
            m.put(i, LABELS.get(i));
        }
        return m;
    }

    private static String special(String token, int typeId) {
        return "{\"SpecialToken\":{\"id\":\"" + token + "\",\"type_id\":" + typeId + "}}";
    }

    private static String sequence(String id, int typeId) {
        return "{\"Sequence\":{\"id\":\"" + id + "\",\"type_id\":" + typeId + "}}";
    }

    private static String quote(String s) {
        StringBuilder q = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                q.append('\\');
            }
            q.append(c);
        }
        return q.append('"').toString();
    }

    private static String[] names(String... n) {
        return n;
    }
}
