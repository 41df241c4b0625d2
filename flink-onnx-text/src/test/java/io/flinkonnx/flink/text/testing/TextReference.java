package io.flinkonnx.flink.text.testing;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.io.IOException;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The independent reference for text scoring: DJL's tokenizer used directly (its own builder), a plain ORT session
 * run on one record at a time (no batching, no padding, none of the library's code) and pooling written out here.
 * Closed after use.
 */
public final class TextReference implements AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final OrtSession session;

    /** A reference over {@code model} and {@code tokenizerJson}, truncating at {@code maxLength} tokens. */
    public TextReference(Path model, Path tokenizerJson, int maxLength) throws IOException, OrtException {
        this.tokenizer = HuggingFaceTokenizer.builder()
                .optTokenizerPath(tokenizerJson)
                .optAddSpecialTokens(true)
                .optPadding(false)
                .optTruncation(true)
                .optMaxLength(maxLength)
                .build();
        OrtSession created;
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(1);
            created = OrtEnvironment.getEnvironment().createSession(model.toString(), options);
        } catch (OrtException | RuntimeException e) {
            tokenizer.close();
            throw e;
        }
        this.session = created;
    }

    /** The token ids of {@code text} (special tokens included). */
    public long[] ids(String text) {
        return tokenizer.encode(text).getIds();
    }

    /** Runs the model on {@code text} (and its pair, or null) alone and returns output {@code name}, flat. */
    public float[] run(String text, String pair, String name) throws OrtException {
        Encoding e = pair == null ? tokenizer.encode(text) : tokenizer.encode(text, pair);
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        long[] shape = {1, e.getIds().length};
        Map<String, OnnxTensor> inputs = new HashMap<>();
        try {
            inputs.put("input_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(e.getIds()), shape));
            inputs.put("attention_mask", OnnxTensor.createTensor(env, LongBuffer.wrap(e.getAttentionMask()), shape));
            inputs.put("token_type_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(e.getTypeIds()), shape));
            try (OrtSession.Result result = session.run(inputs)) {
                OnnxTensor out = (OnnxTensor) result.get(name).orElseThrow();
                float[] values = new float[(int) out.getInfo().getNumElements()];
                out.getFloatBuffer().get(values);
                return values;
            }
        } finally {
            inputs.values().forEach(OnnxTensor::close);
        }
    }

    /** The mean of the token vectors of {@code last_hidden_state} ({@code [1, seq, hidden]}), L2-normalised or not. */
    public float[] meanEmbedding(String text, boolean normalize) throws OrtException {
        float[] states = run(text, null, "last_hidden_state");
        int hidden = TextModels.HIDDEN;
        int tokens = states.length / hidden;
        float[] mean = new float[hidden];
        for (int h = 0; h < hidden; h++) {
            double sum = 0;
            for (int t = 0; t < tokens; t++) {
                sum += states[t * hidden + h];
            }
            mean[h] = (float) (sum / tokens);
        }
        return normalize ? normalized(mean) : mean;
    }

    /** The first token's vector of {@code last_hidden_state}. */
    public float[] clsEmbedding(String text) throws OrtException {
        float[] states = run(text, null, "last_hidden_state");
        float[] cls = new float[TextModels.HIDDEN];
        System.arraycopy(states, 0, cls, 0, cls.length);
        return cls;
    }

    /** The index of the largest logit and its softmax probability. */
    public Object[] topLabel(String text) throws OrtException {
        float[] logits = run(text, null, "logits");
        int top = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[top]) {
                top = i;
            }
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp(l - logits[top]);
        }
        return new Object[] {TextModels.LABELS.get(top), top, (float) (1 / sum)};
    }

    private static float[] normalized(float[] v) {
        double sq = 0;
        for (float x : v) {
            sq += x * x;
        }
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] / Math.sqrt(sq));
        }
        return out;
    }

    @Override
    public void close() throws OrtException {
        try {
            session.close();
        } finally {
            tokenizer.close();
        }
    }
}
