package io.flinkonnx.flink.text.internal;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.RecordEncoder;
import io.flinkonnx.flink.text.TextEncoder;
import io.flinkonnx.flink.text.Truncation;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.flink.annotation.Internal;

/**
 * A {@link TextEncoder} bound to one model: the loaded native tokenizer and the model's id, mask and type inputs
 * with their element types. One per scoring instance; {@link #close()} frees the tokenizer.
 */
@Internal
public final class TokenizingEncoder<IN> implements RecordEncoder<IN>, AutoCloseable {
    private static final long serialVersionUID = 1L;

    private final TextEncoder<IN> config;
    private final transient HuggingFaceTokenizer tokenizer;
    private final String ids;
    private final String mask;
    private final String types;
    /** Per input (ids, mask, types): whether the model declares it INT32 (else INT64). */
    private final boolean idsInt32;

    private final boolean maskInt32;
    private final boolean typesInt32;

    public TokenizingEncoder(TextEncoder<IN> config, ModelSignature signature, String model) {
        this.config = config;
        TensorSpec idsInput = signature
                .input(config.inputIdsName())
                .orElseThrow(() -> new IllegalArgumentException("Model " + model + " has no input '"
                        + config.inputIdsName() + "' for the token ids of " + config.tokenizer() + "; its inputs: "
                        + names(signature.inputs()) + " (rename with TextEncoder.Builder.inputNames)"));
        checkTokenInput(idsInput, model);
        Optional<TensorSpec> maskInput = signature.input(config.attentionMaskName());
        Optional<TensorSpec> typeInput = signature.input(config.tokenTypeIdsName());
        maskInput.ifPresent(t -> checkTokenInput(t, model));
        typeInput.ifPresent(t -> checkTokenInput(t, model));
        this.idsInt32 = idsInput.elementType() == ElementType.INT32;
        this.maskInt32 =
                maskInput.map(t -> t.elementType() == ElementType.INT32).orElse(false);
        this.typesInt32 =
                typeInput.map(t -> t.elementType() == ElementType.INT32).orElse(false);
        this.ids = idsInput.name();
        this.mask = maskInput.map(TensorSpec::name).orElse(null);
        this.types = typeInput.map(TensorSpec::name).orElse(null);
        for (TensorSpec input : signature.inputs()) {
            String name = input.name();
            if (!name.equals(ids) && !name.equals(mask) && !name.equals(types)) {
                throw new IllegalArgumentException("Model " + model + " has input " + input + ", which a TextEncoder"
                        + " does not fill (it fills " + config.inputIdsName() + ", " + config.attentionMaskName()
                        + ", " + config.tokenTypeIdsName() + "); write an encoder of your own for this model");
            }
        }
        byte[] json = TextFiles.read(config.tokenizer(), "tokenizer");
        long vocabulary = Vocabulary.size(json, config.tokenizer());
        Optional<Long> rows = signature.lookupTableRows(ids);
        if (rows.isPresent() && vocabulary > rows.get()) {
            throw new IllegalArgumentException("The tokenizer " + config.tokenizer() + " does not fit model " + model
                    + ": its vocabulary has " + vocabulary + " tokens (ids up to " + (vocabulary - 1) + "), but the"
                    + " embedding table that input '" + ids + "' indexes has " + rows.get() + " rows. Use the"
                    + " tokenizer.json exported with this model.");
        }
        if (types != null && config.pairText() != null) {
            Optional<Long> typeRows = signature.lookupTableRows(types);
            if (typeRows.isPresent() && typeRows.get() < 2) {
                throw new IllegalArgumentException("Model " + model + " has " + typeRows.get() + " token type row(s)"
                        + " for input '" + types + "', but pair texts need 2 (type 1 marks the second text)");
            }
        }
        this.tokenizer = load(json, config);
    }

    private static HuggingFaceTokenizer load(byte[] json, TextEncoder<?> config) {
        Map<String, String> options = new HashMap<>();
        options.put("addSpecialTokens", "true");
        options.put("padding", "false");
        options.put("truncation", config.truncation() == Truncation.TRUNCATE ? "true" : "false");
        options.put("maxLength", Integer.toString(config.maxLength()));
        options.put("modelMaxLength", Integer.toString(config.maxLength()));
        try {
            return HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json), options);
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException(
                    "The tokenizer " + config.tokenizer() + " cannot be loaded by DJL's Hugging Face tokenizers: " + e,
                    e);
        }
    }

    private void checkTokenInput(TensorSpec input, String model) {
        if (input.kind() != TensorSpec.Kind.TENSOR
                || (input.elementType() != ElementType.INT64 && input.elementType() != ElementType.INT32)) {
            throw new IllegalArgumentException("Model " + model + " input " + input + " must be an INT64 or INT32"
                    + " tensor for the tokens of " + config.tokenizer());
        }
        List<Dim> dims = input.recordDims();
        if (dims.size() != 1 || dims.get(0).isFixed()) {
            throw new IllegalArgumentException("Model " + model + " input " + input + " must be [batch, sequence]"
                    + " with a free sequence axis for the tokens of " + config.tokenizer() + "; it takes "
                    + dims + " per record");
        }
    }

    @Override
    public void encode(IN record, InputRow row) throws Exception {
        String text = bounded(checked(config.text().text(record), "text"), "text");
        Encoding encoding;
        if (config.pairText() == null) {
            encoding = tokenizer.encode(text, true, false);
        } else {
            String pair = bounded(checked(config.pairText().text(record), "pair text"), "pair text");
            encoding = tokenizer.encode(text, pair, true, false);
        }
        long[] tokenIds = encoding.getIds();
        long[] special = encoding.getSpecialTokenMask();
        boolean content = false;
        for (long s : special) {
            if (s == 0) {
                content = true;
                break;
            }
        }
        if (!content) {
            throw new RecordConversionException("The text tokenizes to no tokens but the special ones ("
                    + tokenIds.length + " token(s)): it holds no word the tokenizer keeps (only whitespace or"
                    + " control characters?)");
        }
        if (config.truncation() == Truncation.REFUSE && tokenIds.length > config.maxLength()) {
            throw new RecordConversionException("The text is " + tokenIds.length + " tokens long, more than maxLength "
                    + config.maxLength() + ", and truncation is REFUSE");
        }
        int n = tokenIds.length;
        row.put(ids, values(tokenIds, idsInt32), n);
        if (mask != null) {
            row.put(mask, values(encoding.getAttentionMask(), maskInt32), n);
        }
        if (types != null) {
            row.put(types, values(encoding.getTypeIds(), typesInt32), n);
        }
    }

    /** The values as the model declares the input: INT64 as they come, INT32 narrowed (token ids fit). */
    private static Object values(long[] v, boolean int32) {
        if (!int32) {
            return v;
        }
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (int) v[i];
        }
        return out;
    }

    /** The text, refused when null, empty or not valid UTF-16. */
    /**
     * Characters per token beyond which a text is cut (or refused) before it is tokenized: a record's text of any
     * length would otherwise be tokenized whole on the task thread (seconds and native memory for a 50 MB field)
     * only to keep {@code maxLength} tokens. Few tokens are longer; a text of such tokens keeps fewer of them.
     */
    static final int MAX_CHARS_PER_TOKEN = 64;

    private String bounded(String text, String what) {
        long bound = (long) config.maxLength() * MAX_CHARS_PER_TOKEN;
        if (text.length() <= bound) {
            return text;
        }
        if (config.truncation() == Truncation.REFUSE) {
            throw new RecordConversionException("The " + what + " is " + text.length() + " characters long, more"
                    + " than " + MAX_CHARS_PER_TOKEN + " per token of maxLength " + config.maxLength()
                    + ", and truncation is REFUSE");
        }
        int end = (int) bound;
        if (Character.isHighSurrogate(text.charAt(end - 1))) {
            end--; // keep a surrogate pair whole
        }
        return text.substring(0, end);
    }

    static String checked(String text, String what) {
        if (text == null) {
            throw new RecordConversionException("The " + what + " is null: there is nothing to tokenize");
        }
        if (text.isEmpty()) {
            throw new RecordConversionException("The " + what + " is empty: there is nothing to tokenize");
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                    i++;
                    continue;
                }
                throw unpaired(what, c, i);
            }
            if (Character.isLowSurrogate(c)) {
                throw unpaired(what, c, i);
            }
        }
        return text;
    }

    private static RecordConversionException unpaired(String what, char c, int index) {
        return new RecordConversionException(String.format(
                "The %s is not valid UTF-16: an unpaired surrogate U+%04X at char %d (a string cut in the middle of"
                        + " a character?)",
                what, (int) c, index));
    }

    private static String names(List<TensorSpec> specs) {
        StringBuilder s = new StringBuilder("[");
        for (TensorSpec t : specs) {
            s.append(s.length() > 1 ? ", " : "").append(t.name());
        }
        return s.append(']').toString();
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
