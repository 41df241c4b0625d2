package io.flinkonnx.flink;

import org.apache.flink.annotation.PublicEvolving;

/**
 * Where a {@link RecordEncoder} puts one record's values for the model's named inputs: one row of the
 * batch axis per input.
 *
 * <p>Values are given flat, in row-major order, as the Java array matching the input's element type
 * ({@code float[]} for FLOAT, {@code long[]} for INT64, {@code byte[]} for INT8/UINT8, {@code boolean[]}
 * for BOOL, {@code String[]} for STRING, ...); a single {@code String} is one value of a STRING input. Strings
 * must not be null nor hold unpaired UTF-16 surrogates (such a record is refused as a dead letter); they reach
 * the model as UTF-8 by way of ONNX Runtime's Java API, which writes characters outside the Basic Multilingual
 * Plane (emoji) as two 3-byte surrogate sequences. Nothing is cast: a {@code float[]} for an INT64 input is
 * an error naming the input, the expected and the given type. The per-record shape is the input's shape
 * without the batch axis; it is inferred from the length when at most one of its dims is not fixed,
 * otherwise give it with {@link #put(String, Object, long...)}.
 */
@PublicEvolving
public interface InputRow {

    /**
     * Values for input {@code name}, shape inferred; the array's class must match the element type.
     *
     * @param name the model input's name
     * @param values the record's values, flat, row-major: the Java array of the input's element type
     * @return this row, to put the next input
     * @throws RecordConversionException when the model has no input {@code name}, the input was given already
     *     for this record, or the values are null, of another element type or of a
     *     length that fits no shape of the input
     */
    InputRow put(String name, Object values);

    /**
     * Values for input {@code name} with an explicit per-record shape (without the batch axis).
     *
     * @param name the model input's name
     * @param values the record's values, flat, row-major: the Java array of the input's element type
     * @param recordShape the record's dims without the batch axis, each >= 0, their product the number of
     *     values, matching the input's fixed dims
     * @return this row, to put the next input
     * @throws RecordConversionException when the model has no input {@code name}, the input was given already
     *     for this record, or the values are null, of another element type or of a
     *     length other than the shape's, or the shape does not fit the input's
     */
    InputRow put(String name, Object values, long... recordShape);

    /**
     * Values for the model's only input (fails when the model has several inputs).
     *
     * @param values the record's values, flat, row-major: the Java array of the input's element type
     * @return this row
     * @throws RecordConversionException when the model has more than one input, or as {@link #put(String,
     *     Object)}
     */
    InputRow put(Object values);
}
