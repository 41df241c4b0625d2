package io.flinkonnx.flink;

import java.util.List;
import org.apache.flink.annotation.PublicEvolving;

/**
 * One record's slice of the model's outputs, given to a {@link ResultDecoder}. Tensors come back flat,
 * row-major, without the batch axis; read each with the accessor of its element type ({@code floats} for
 * FLOAT, ...): a mismatch is an error naming the output and the right accessor. The single-argument-less
 * forms read the model's only output.
 */
@PublicEvolving
public interface OutputRow {

    /** The output names, in the model's order. */
    List<String> names();

    /** The shape of this record's slice of {@code name} (without the batch axis). */
    long[] shape(String name);

    float[] floats(String name);

    double[] doubles(String name);

    long[] longs(String name);

    int[] ints(String name);

    short[] shorts(String name);

    /** INT8 and UINT8 outputs (UINT8 values are the unsigned bytes; mask with {@code & 0xFF}). */
    byte[] bytes(String name);

    boolean[] booleans(String name);

    String[] strings(String name);

    /**
     * A non-tensor output (a sequence or map, e.g. scikit-learn's ZipMap probabilities) as ORT's Java
     * value ({@code List}, {@code Map}); a sequence with one element per record gives this record's.
     */
    Object value(String name);

    /** The model's only output as floats (fails when the model has several outputs). */
    float[] floats();

    /**
     * The label of the model version that produced these outputs ({@link ModelUpdate#version}, a watched
     * folder's version name, or the served model's file name), so a decoder can put it in the result.
     */
    default String modelVersion() {
        return null;
    }

    /** The URI of the model that produced these outputs (with several models per operator: which one). */
    default String modelUri() {
        return null;
    }

    /** The sha256 of the model bytes that produced these outputs (see {@code ModelSource.withSha256}). */
    default String modelSha256() {
        return null;
    }
}
