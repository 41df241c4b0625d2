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

    /**
     * The output names, in the model's order.
     *
     * @return the names of the model's outputs
     */
    List<String> names();

    /**
     * The shape of this record's slice of {@code name} (without the batch axis).
     *
     * @param name the model output's name
     * @return the record's dims of that output (padding cut off where the inputs were padded)
     * @throws RecordConversionException when the model has no output {@code name}
     */
    long[] shape(String name);

    /**
     * This record's values of a FLOAT output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not a FLOAT (the
     *     message names the right accessor)
     */
    float[] floats(String name);

    /**
     * This record's values of a DOUBLE output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not a DOUBLE (the
     *     message names the right accessor)
     */
    double[] doubles(String name);

    /**
     * This record's values of an INT64 output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not an INT64 (the
     *     message names the right accessor)
     */
    long[] longs(String name);

    /**
     * This record's values of an INT32 output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not an INT32 (the
     *     message names the right accessor)
     */
    int[] ints(String name);

    /**
     * This record's values of an INT16 output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not an INT16 (the
     *     message names the right accessor)
     */
    short[] shorts(String name);

    /**
     * INT8 and UINT8 outputs (UINT8 values are the unsigned bytes; mask with {@code & 0xFF}).
     *
     * @param name the model output's name
     * @return the values (for this record only), flat, row-major
     * @throws RecordConversionException when the model has no output {@code name} or it is not INT8 or UINT8
     *     (the message names the right accessor)
     */
    byte[] bytes(String name);

    /**
     * This record's values of a BOOL output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not a BOOL (the
     *     message names the right accessor)
     */
    boolean[] booleans(String name);

    /**
     * This record's values of a STRING output {@code name}, flat, row-major, without the batch axis.
     *
     * @param name the model output's name
     * @return the values (for this record only)
     * @throws RecordConversionException when the model has no output {@code name} or it is not a STRING (the
     *     message names the right accessor)
     */
    String[] strings(String name);

    /**
     * A non-tensor output (a sequence or map, e.g. scikit-learn's ZipMap probabilities) as ORT's Java
     * value ({@code List}, {@code Map}); a sequence with one element per record gives this record's.
     *
     * @param name the model output's name
     * @return the output's value for this record (a tensor output: its flat array, as its typed accessor)
     * @throws RecordConversionException when the model has no output {@code name}
     */
    Object value(String name);

    /**
     * The model's only output as floats (fails when the model has several outputs).
     *
     * @return this record's values of the only output
     * @throws RecordConversionException when the model has more than one output, or its output is not FLOAT
     */
    float[] floats();

    /**
     * The label of the model version that produced these outputs ({@link ModelUpdate#version}, a watched
     * folder's version name, or the served model's file name), so a decoder can put it in the result.
     *
     * @return the version label, or null where the runtime does not know it
     */
    default String modelVersion() {
        return null;
    }

    /**
     * The URI of the model that produced these outputs (with several models per operator: which one).
     *
     * @return the model's URI, or null where the runtime does not know it
     */
    default String modelUri() {
        return null;
    }

    /**
     * The sha256 of the model bytes that produced these outputs (see {@code ModelSource.withSha256}).
     *
     * @return the hex sha256, or null where it is not known
     */
    default String modelSha256() {
        return null;
    }
}
