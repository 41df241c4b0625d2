package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.tensor.ElementCodec;
import io.flinkonnx.model.ElementType;
import java.lang.reflect.Array;
import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.apache.flink.annotation.Internal;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * The one mapping between ONNX element types and Flink SQL types, for the model provider ({@link SqlBinding})
 * and the scalar function ({@link OnnxScoreFunction}): the SQL type of an element, the ONNX type of a SQL
 * column, and the conversions of values both ways (internal {@code RowData}/{@code ArrayData} for the
 * provider, boxed arrays for the function). UINT8 travels as TINYINT.
 */
@Internal
public final class SqlTypes {
    /** What one element type needs in SQL. */
    private static final class Mapping {
        final DataType dataType;
        final Class<?> boxedArray;
        final Function<ArrayData, Object> fromArray;
        final BiFunction<RowData, Integer, Object> fromScalar;
        final Function<Object, ArrayData> toArray;

        Mapping(
                DataType dataType,
                Class<?> boxedArray,
                Function<ArrayData, Object> fromArray,
                BiFunction<RowData, Integer, Object> fromScalar,
                Function<Object, ArrayData> toArray) {
            this.dataType = dataType;
            this.boxedArray = boxedArray;
            this.fromArray = fromArray;
            this.fromScalar = fromScalar;
            this.toArray = toArray;
        }
    }

    private static final Map<ElementType, Mapping> MAPPINGS = new EnumMap<>(ElementType.class);
    private static final Map<LogicalTypeRoot, ElementType> BY_ROOT = new EnumMap<>(LogicalTypeRoot.class);

    static {
        MAPPINGS.put(
                ElementType.FLOAT,
                new Mapping(
                        DataTypes.FLOAT(),
                        Float[].class,
                        ArrayData::toFloatArray,
                        (r, i) -> new float[] {r.getFloat(i)},
                        v -> new GenericArrayData((float[]) v)));
        MAPPINGS.put(
                ElementType.DOUBLE,
                new Mapping(
                        DataTypes.DOUBLE(),
                        Double[].class,
                        ArrayData::toDoubleArray,
                        (r, i) -> new double[] {r.getDouble(i)},
                        v -> new GenericArrayData((double[]) v)));
        MAPPINGS.put(
                ElementType.INT64,
                new Mapping(
                        DataTypes.BIGINT(),
                        Long[].class,
                        ArrayData::toLongArray,
                        (r, i) -> new long[] {r.getLong(i)},
                        v -> new GenericArrayData((long[]) v)));
        MAPPINGS.put(
                ElementType.INT32,
                new Mapping(
                        DataTypes.INT(),
                        Integer[].class,
                        ArrayData::toIntArray,
                        (r, i) -> new int[] {r.getInt(i)},
                        v -> new GenericArrayData((int[]) v)));
        MAPPINGS.put(
                ElementType.INT16,
                new Mapping(
                        DataTypes.SMALLINT(),
                        Short[].class,
                        ArrayData::toShortArray,
                        (r, i) -> new short[] {r.getShort(i)},
                        v -> new GenericArrayData((short[]) v)));
        Mapping bytes = new Mapping(
                DataTypes.TINYINT(),
                Byte[].class,
                ArrayData::toByteArray,
                (r, i) -> new byte[] {r.getByte(i)},
                v -> new GenericArrayData((byte[]) v));
        MAPPINGS.put(ElementType.INT8, bytes);
        MAPPINGS.put(ElementType.UINT8, bytes);
        MAPPINGS.put(
                ElementType.BOOL,
                new Mapping(
                        DataTypes.BOOLEAN(),
                        Boolean[].class,
                        ArrayData::toBooleanArray,
                        (r, i) -> new boolean[] {r.getBoolean(i)},
                        v -> new GenericArrayData((boolean[]) v)));
        MAPPINGS.put(
                ElementType.STRING,
                new Mapping(
                        DataTypes.STRING(),
                        String[].class,
                        SqlTypes::strings,
                        (r, i) -> new String[] {r.getString(i).toString()},
                        SqlTypes::stringData));
        BY_ROOT.put(LogicalTypeRoot.FLOAT, ElementType.FLOAT);
        BY_ROOT.put(LogicalTypeRoot.DOUBLE, ElementType.DOUBLE);
        BY_ROOT.put(LogicalTypeRoot.BIGINT, ElementType.INT64);
        BY_ROOT.put(LogicalTypeRoot.INTEGER, ElementType.INT32);
        BY_ROOT.put(LogicalTypeRoot.SMALLINT, ElementType.INT16);
        BY_ROOT.put(LogicalTypeRoot.TINYINT, ElementType.INT8);
        BY_ROOT.put(LogicalTypeRoot.BOOLEAN, ElementType.BOOL);
        BY_ROOT.put(LogicalTypeRoot.CHAR, ElementType.STRING);
        BY_ROOT.put(LogicalTypeRoot.VARCHAR, ElementType.STRING);
    }

    private SqlTypes() {}

    /** The SQL type carrying values of {@code t} (one element of an ARRAY, or a scalar), or null. */
    public static DataType dataType(ElementType t) {
        Mapping m = MAPPINGS.get(t);
        return m == null ? null : m.dataType;
    }

    /** The SQL type's name for messages: {@code FLOAT}, or why there is none. */
    public static String sqlName(ElementType t) {
        DataType type = dataType(t);
        return type == null ? "(no SQL type for " + t + ")" : type.toString();
    }

    /** The ONNX element type a SQL column of {@code root} carries, or null. */
    public static ElementType elementType(LogicalTypeRoot root) {
        return BY_ROOT.get(root);
    }

    /** Whether a column carrying {@code given} may feed an ONNX input of {@code wanted} (TINYINT feeds UINT8). */
    public static boolean feeds(ElementType given, ElementType wanted) {
        return given == wanted || (given == ElementType.INT8 && wanted == ElementType.UINT8);
    }

    /** The boxed array class SQL hands a function for ARRAY of {@code t} ({@code Float[]} for FLOAT). */
    public static Class<?> boxedArray(ElementType t) {
        return mapping(t).boxedArray;
    }

    /** An ARRAY column's values as a fresh primitive array for ONNX input {@code t}. */
    public static Object fromArray(ArrayData a, ElementType t) {
        return mapping(t).fromArray.apply(a);
    }

    /** A scalar column's value as a one-element primitive array for ONNX input {@code t}. */
    public static Object fromScalar(RowData row, int column, ElementType t) {
        return mapping(t).fromScalar.apply(row, column);
    }

    /** An output's values (a primitive array, or String[]) as SQL's internal ARRAY data. */
    public static ArrayData toArrayData(Object values) {
        ElementCodec codec = ElementCodec.ofArray(values.getClass());
        if (codec == null) {
            throw new IllegalArgumentException(
                    "No SQL ARRAY for " + values.getClass().getSimpleName());
        }
        return mapping(codec.type).toArray.apply(values);
    }

    /** A boxed array ({@code Float[]}, SQL's conversion class of ARRAY) as a primitive one; nulls refused. */
    public static Object unbox(Object boxed, ElementType t) {
        int n = Array.getLength(boxed);
        ElementCodec codec = ElementCodec.of(t);
        Object out = codec.newArray(n);
        for (int i = 0; i < n; i++) {
            Object v = Array.get(boxed, i);
            if (v == null) {
                throw new RecordConversionException("Element " + i + " of an ARRAY argument is NULL");
            }
            Array.set(out, i, v);
        }
        return out;
    }

    /** A primitive array as its boxed twin ({@code float[]} to {@code Float[]}), what SQL functions return. */
    public static Object box(Object primitive) {
        ElementCodec codec = ElementCodec.ofArray(primitive.getClass());
        Class<?> boxed = codec == null ? String[].class : mapping(codec.type).boxedArray;
        int n = Array.getLength(primitive);
        Object out = Array.newInstance(boxed.getComponentType(), n);
        for (int i = 0; i < n; i++) {
            Array.set(out, i, Array.get(primitive, i));
        }
        return out;
    }

    private static Mapping mapping(ElementType t) {
        Mapping m = MAPPINGS.get(t);
        if (m == null) {
            throw new IllegalArgumentException("ONNX element type " + t + " has no SQL type");
        }
        return m;
    }

    private static Object strings(ArrayData a) {
        String[] s = new String[a.size()];
        for (int k = 0; k < s.length; k++) {
            s[k] = Objects.toString(a.getString(k), null);
        }
        return s;
    }

    private static ArrayData stringData(Object values) {
        String[] s = (String[]) values;
        StringData[] d = new StringData[s.length];
        for (int k = 0; k < s.length; k++) {
            d[k] = StringData.fromString(s[k]);
        }
        return new GenericArrayData(d);
    }
}
