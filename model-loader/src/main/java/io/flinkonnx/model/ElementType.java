package io.flinkonnx.model;

import org.apache.flink.annotation.PublicEvolving;

/**
 * ONNX tensor element types ({@code TensorProto.DataType}), with the Java array type a record uses for
 * each one.
 *
 * <p>The numeric codes are ONNX's; codes newer than the vendored onnx.proto (float8, int4, ...) are
 * listed here too so that a model using them is described rather than rejected as unreadable.
 */
@PublicEvolving
public enum ElementType {
    UNDEFINED(0, null),
    FLOAT(1, float[].class),
    UINT8(2, byte[].class),
    INT8(3, byte[].class),
    UINT16(4, null),
    INT16(5, short[].class),
    INT32(6, int[].class),
    INT64(7, long[].class),
    STRING(8, String[].class),
    BOOL(9, boolean[].class),
    /** Raw IEEE binary16 bit patterns in a {@code short[]}. */
    FLOAT16(10, short[].class),
    DOUBLE(11, double[].class),
    UINT32(12, null),
    UINT64(13, null),
    COMPLEX64(14, null),
    COMPLEX128(15, null),
    /** Raw bfloat16 bit patterns in a {@code short[]}. */
    BFLOAT16(16, short[].class),
    FLOAT8E4M3FN(17, null),
    FLOAT8E4M3FNUZ(18, null),
    FLOAT8E5M2(19, null),
    FLOAT8E5M2FNUZ(20, null),
    UINT4(21, null),
    INT4(22, null),
    FLOAT4E2M1(23, null);

    private final int onnxCode;
    private final Class<?> javaArrayType;

    ElementType(int onnxCode, Class<?> javaArrayType) {
        this.onnxCode = onnxCode;
        this.javaArrayType = javaArrayType;
    }

    /** The {@code TensorProto.DataType} number. */
    public int onnxCode() {
        return onnxCode;
    }

    /**
     * The Java array type that carries one record's values of this type ({@code float[]} for FLOAT,
     * {@code long[]} for INT64, {@code byte[]} for INT8 and UINT8, ...), or {@code null} where records
     * cannot feed this type directly.
     */
    public Class<?> javaArrayType() {
        return javaArrayType;
    }

    /** Whether a record can carry values of this type. */
    public boolean isSupportedForRecords() {
        return javaArrayType != null;
    }

    /** Bytes per element in a dense native buffer; 0 for strings and unsupported types. */
    public int byteSize() {
        switch (this) {
            case DOUBLE:
            case INT64:
                return 8;
            case FLOAT:
            case INT32:
                return 4;
            case INT16:
            case UINT16:
            case FLOAT16:
            case BFLOAT16:
                return 2;
            case INT8:
            case UINT8:
            case BOOL:
                return 1;
            default:
                return 0;
        }
    }

    /** The type with this ONNX code; UNDEFINED when the code is not known. */
    public static ElementType fromOnnxCode(int code) {
        for (ElementType t : values()) {
            if (t.onnxCode == code) {
                return t;
            }
        }
        return UNDEFINED;
    }
}
