package io.flinkonnx.flink;

import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * How SQL columns map to an ONNX model's inputs and outputs: by name, or by position when the names
 * differ and the counts match. {@code ARRAY<numeric>} is one row of the batch axis; a scalar column is a
 * {@code [batch]} or {@code [batch,1]} tensor. Types must match exactly (FLOAT-FLOAT, BIGINT-INT64, ...):
 * nothing is cast. Checked when the model is planned; errors name the column and the ONNX input.
 */
final class SqlBinding implements Serializable {
    private static final long serialVersionUID = 1L;

    /** One column bound to one ONNX tensor. */
    static final class Binding implements Serializable {
        private static final long serialVersionUID = 1L;
        final String column;
        final String onnxName;
        final ElementType type;
        final boolean array;
        /** For scalar columns: the per-record shape, [] or [1]. */
        final long[] scalarShape;

        Binding(String column, String onnxName, ElementType type, boolean array, long[] scalarShape) {
            this.column = column;
            this.onnxName = onnxName;
            this.type = type;
            this.array = array;
            this.scalarShape = scalarShape;
        }
    }

    final List<Binding> inputs;
    final List<Binding> outputs;

    private SqlBinding(List<Binding> inputs, List<Binding> outputs) {
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
    }

    static SqlBinding bind(String model, ModelSignature signature, List<Column> inputColumns, List<Column> outputColumns) {
        return new SqlBinding(bindSide(model, "input", signature.inputs(), inputColumns),
                bindSide(model, "output", signature.outputs(), outputColumns));
    }

    private static List<Binding> bindSide(String model, String side, List<TensorSpec> specs, List<Column> columns) {
        boolean byName = columns.stream().allMatch(c -> specs.stream().anyMatch(s -> s.name().equals(c.getName())));
        if (!byName && columns.size() != specs.size()) {
            throw new IllegalArgumentException("Model " + model + ": " + side.toUpperCase() + " columns "
                    + names(columns) + " match neither the ONNX " + side + " names nor their count: the model has "
                    + RecordInputs.describe(specs));
        }
        List<Binding> out = new ArrayList<>();
        for (int i = 0; i < columns.size(); i++) {
            Column c = columns.get(i);
            TensorSpec spec = byName ? specs.stream().filter(s -> s.name().equals(c.getName())).findFirst().get()
                    : specs.get(i);
            out.add(bindColumn(model, side, c, spec));
        }
        return out;
    }

    private static Binding bindColumn(String model, String side, Column c, TensorSpec spec) {
        LogicalType type = c.getDataType().getLogicalType();
        boolean array = type.getTypeRoot() == LogicalTypeRoot.ARRAY;
        LogicalType element = array ? ((ArrayType) type).getElementType() : type;
        ElementType expected = elementType(element.getTypeRoot());
        String where = "Model " + model + ": " + side.toUpperCase() + " column '" + c.getName() + "' (" + type
                + ") is bound to ONNX " + side + " " + spec;
        if (spec.kind() != TensorSpec.Kind.TENSOR) {
            throw new IllegalArgumentException(where + ", which is not a tensor");
        }
        boolean compatible = expected == spec.elementType()
                || (expected == ElementType.INT8 && spec.elementType() == ElementType.UINT8);
        if (expected == null || !compatible) {
            throw new IllegalArgumentException(where + ": the types differ (" + (expected == null ? element
                    : expected) + " vs " + spec.elementType() + "); declare the column as " + sqlType(spec.elementType())
                    + " or ARRAY<" + sqlType(spec.elementType()) + ">");
        }
        long[] scalarShape = null;
        if (!array) {
            List<Dim> dims = spec.recordDims();
            if (dims.isEmpty()) {
                scalarShape = new long[0];
            } else if (dims.size() == 1 && (!dims.get(0).isFixed() || dims.get(0).value() == 1)) {
                scalarShape = new long[] {1};
            } else {
                throw new IllegalArgumentException(where + ": a scalar column needs a [batch] or [batch,1] tensor,"
                        + " this one takes " + RecordInputs.shapeOf(dims) + " per record; declare the column as ARRAY<"
                        + sqlType(spec.elementType()) + ">");
            }
        }
        return new Binding(c.getName(), spec.name(), spec.elementType(), array, scalarShape);
    }

    private static ElementType elementType(LogicalTypeRoot root) {
        switch (root) {
            case FLOAT:
                return ElementType.FLOAT;
            case DOUBLE:
                return ElementType.DOUBLE;
            case BIGINT:
                return ElementType.INT64;
            case INTEGER:
                return ElementType.INT32;
            case SMALLINT:
                return ElementType.INT16;
            case TINYINT:
                return ElementType.INT8;
            case BOOLEAN:
                return ElementType.BOOL;
            case CHAR:
            case VARCHAR:
                return ElementType.STRING;
            default:
                return null;
        }
    }

    /** The SQL type carrying values of {@code t} (one element of an ARRAY, or a scalar), or null. */
    static DataType dataType(ElementType t) {
        switch (t) {
            case FLOAT:
                return DataTypes.FLOAT();
            case DOUBLE:
                return DataTypes.DOUBLE();
            case INT64:
                return DataTypes.BIGINT();
            case INT32:
                return DataTypes.INT();
            case INT16:
                return DataTypes.SMALLINT();
            case INT8:
            case UINT8:
                return DataTypes.TINYINT();
            case BOOL:
                return DataTypes.BOOLEAN();
            case STRING:
                return DataTypes.STRING();
            default:
                return null;
        }
    }

    private static String sqlType(ElementType t) {
        DataType type = dataType(t);
        return type == null ? "(no SQL type for " + t + ")" : type.toString();
    }

    private static String names(List<Column> columns) {
        return columns.stream().map(Column::getName).collect(java.util.stream.Collectors.toList()).toString();
    }

    /** The input values of {@code row} as fresh Java arrays (the planner may reuse the row afterwards). */
    Object[] values(RowData row) {
        Object[] values = new Object[inputs.size()];
        for (int i = 0; i < inputs.size(); i++) {
            Binding b = inputs.get(i);
            if (row.isNullAt(i)) {
                throw new RecordConversionException("Column '" + b.column + "' is NULL; ONNX input '" + b.onnxName
                        + "' needs a value");
            }
            values[i] = b.array ? fromArray(row.getArray(i), b) : fromScalar(row, i, b);
        }
        return values;
    }

    /** Puts converted values into a record's inputs. */
    void encode(Object[] values, InputRow row) {
        for (int i = 0; i < inputs.size(); i++) {
            Binding b = inputs.get(i);
            if (b.array) {
                row.put(b.onnxName, values[i]);
            } else {
                row.put(b.onnxName, values[i], b.scalarShape);
            }
        }
    }

    /** The output columns of one record. */
    RowData decode(OutputRow out) {
        GenericRowData row = new GenericRowData(outputs.size());
        for (int i = 0; i < outputs.size(); i++) {
            Binding b = outputs.get(i);
            Object values = out.value(b.onnxName);
            if (b.array) {
                row.setField(i, toArrayData(values));
            } else {
                if (java.lang.reflect.Array.getLength(values) != 1) {
                    throw new RecordConversionException("Output column '" + b.column + "' is a scalar but ONNX output '"
                            + b.onnxName + "' gave " + java.lang.reflect.Array.getLength(values) + " values per record");
                }
                Object v = java.lang.reflect.Array.get(values, 0);
                row.setField(i, v instanceof String ? StringData.fromString((String) v) : v);
            }
        }
        return row;
    }

    private static Object fromArray(ArrayData a, Binding b) {
        switch (b.type) {
            case FLOAT:
                return a.toFloatArray();
            case DOUBLE:
                return a.toDoubleArray();
            case INT64:
                return a.toLongArray();
            case INT32:
                return a.toIntArray();
            case INT16:
                return a.toShortArray();
            case INT8:
            case UINT8:
                return a.toByteArray();
            case BOOL:
                return a.toBooleanArray();
            case STRING: {
                String[] s = new String[a.size()];
                for (int k = 0; k < s.length; k++) {
                    s[k] = Objects.toString(a.getString(k), null);
                }
                return s;
            }
            default:
                throw new IllegalStateException(b.type.name());
        }
    }

    private static Object fromScalar(RowData row, int i, Binding b) {
        switch (b.type) {
            case FLOAT:
                return new float[] {row.getFloat(i)};
            case DOUBLE:
                return new double[] {row.getDouble(i)};
            case INT64:
                return new long[] {row.getLong(i)};
            case INT32:
                return new int[] {row.getInt(i)};
            case INT16:
                return new short[] {row.getShort(i)};
            case INT8:
            case UINT8:
                return new byte[] {row.getByte(i)};
            case BOOL:
                return new boolean[] {row.getBoolean(i)};
            case STRING:
                return new String[] {row.getString(i).toString()};
            default:
                throw new IllegalStateException(b.type.name());
        }
    }

    private static ArrayData toArrayData(Object values) {
        if (values instanceof float[]) {
            return new GenericArrayData((float[]) values);
        } else if (values instanceof double[]) {
            return new GenericArrayData((double[]) values);
        } else if (values instanceof long[]) {
            return new GenericArrayData((long[]) values);
        } else if (values instanceof int[]) {
            return new GenericArrayData((int[]) values);
        } else if (values instanceof short[]) {
            return new GenericArrayData((short[]) values);
        } else if (values instanceof byte[]) {
            return new GenericArrayData((byte[]) values);
        } else if (values instanceof boolean[]) {
            return new GenericArrayData((boolean[]) values);
        }
        String[] s = (String[]) values;
        StringData[] d = new StringData[s.length];
        for (int k = 0; k < s.length; k++) {
            d[k] = StringData.fromString(s[k]);
        }
        return new GenericArrayData(d);
    }
}
