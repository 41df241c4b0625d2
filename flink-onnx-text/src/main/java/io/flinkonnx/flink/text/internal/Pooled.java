package io.flinkonnx.flink.text.internal;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.text.Pooling;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.annotation.Internal;

/** The arithmetic of the text decoders: pooling, L2 normalisation, softmax. */
@Internal
public final class Pooled {
    private Pooled() {}

    /**
     * One record's embedding from its slice of an output: {@code [sequence, hidden]} pooled, {@code [hidden]}
     * as is. The slice holds the record's own tokens only (the runtime cuts the padding of a batch off along the
     * inputs' sequence axis), each under an attention mask of one, so the mean under the mask is their mean.
     */
    public static float[] embed(float[] values, long[] shape, String output, Pooling pooling, boolean normalize) {
        float[] vector;
        if (shape.length == 1) {
            vector = values.clone();
        } else if (shape.length == 2) {
            int tokens = (int) shape[0];
            int hidden = (int) shape[1];
            if (tokens == 0) {
                throw new RecordConversionException(
                        "Output '" + output + "' has no token for this record: nothing" + " to pool");
            }
            vector = new float[hidden];
            if (pooling == Pooling.CLS) {
                System.arraycopy(values, 0, vector, 0, hidden);
            } else {
                double[] sum = new double[hidden];
                for (int t = 0; t < tokens; t++) {
                    for (int h = 0; h < hidden; h++) {
                        sum[h] += values[t * hidden + h];
                    }
                }
                for (int h = 0; h < hidden; h++) {
                    vector[h] = (float) (sum[h] / tokens);
                }
            }
        } else {
            throw new RecordConversionException("Output '" + output + "' has shape " + Arrays.toString(shape)
                    + " per record; an embedding needs [sequence, hidden] or [hidden]");
        }
        return normalize ? l2Normalized(vector, output) : vector;
    }

    /** {@code v} scaled to unit L2 norm; an all-zero vector has no direction and is refused. */
    public static float[] l2Normalized(float[] v, String output) {
        double sq = 0;
        for (float x : v) {
            sq += (double) x * x;
        }
        double norm = Math.sqrt(sq);
        if (norm == 0 || Double.isNaN(norm) || Double.isInfinite(norm)) {
            throw new RecordConversionException(
                    "The embedding from output '" + output + "' has L2 norm " + norm + ": it cannot be normalised");
        }
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] / norm);
        }
        return out;
    }

    /** The softmax of {@code logits} (max-subtracted, in double). */
    public static float[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float x : logits) {
            max = Math.max(max, x);
        }
        double[] e = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            e[i] = Math.exp(logits[i] - max);
            sum += e[i];
        }
        float[] p = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            p[i] = (float) (e[i] / sum);
        }
        return p;
    }

    /** The embedding output: FLOAT, {@code [batch, sequence, hidden]} on the inputs' sequence axis, or {@code [batch, hidden]}. */
    public static void checkEmbeddingOutput(ModelSignature signature, String model, String output, Pooling pooling) {
        TensorSpec spec = signature
                .output(output)
                .orElseThrow(() -> new IllegalArgumentException("Model " + model + " has no output '" + output
                        + "' to take embeddings from; its outputs: " + names(signature.outputs())));
        if (spec.kind() != TensorSpec.Kind.TENSOR || spec.elementType() != ElementType.FLOAT) {
            throw new IllegalArgumentException(
                    "Model " + model + " output " + spec + " must be a FLOAT tensor to" + " take embeddings from");
        }
        List<Dim> dims = spec.recordDims();
        if (dims.size() == 1) {
            return;
        }
        if (dims.size() != 2) {
            throw new IllegalArgumentException(
                    "Model " + model + " output " + spec + " must be [batch, sequence," + " hidden] (pooled " + pooling
                            + ") or [batch, hidden], it has " + dims.size() + " dims per record");
        }
        Dim sequence = dims.get(0);
        if (pooling == Pooling.MEAN) {
            boolean shared = sequence.isSymbolic()
                    && signature.inputs().stream().anyMatch(i -> i.recordDims().stream()
                            .anyMatch(d -> d.isSymbolic() && d.symbol().equals(sequence.symbol())));
            if (!shared) {
                throw new IllegalArgumentException("Model " + model + " output " + spec + " does not name its sequence"
                        + " axis as its inputs do (" + sequence + "), so a batch's padding cannot be told from a"
                        + " record's tokens for MEAN pooling; use CLS pooling or a pooled [batch, hidden] output");
            }
        }
    }

    /** The output names of {@code specs}. */
    public static String names(List<TensorSpec> specs) {
        StringBuilder s = new StringBuilder("[");
        for (TensorSpec t : specs) {
            s.append(s.length() > 1 ? ", " : "").append(t.name());
        }
        return s.append(']').toString();
    }
}
