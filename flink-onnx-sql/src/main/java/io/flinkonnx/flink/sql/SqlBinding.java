package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.io.Serializable;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.annotation.Internal;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * How SQL columns map to an ONNX model's inputs and outputs: by name, or by position when the names
 * differ and the counts match. {@code ARRAY<numeric>} is one row of the batch axis; a scalar column is a
 * {@code [batch]} or {@code [batch,1]} tensor. Types must match exactly (FLOAT-FLOAT, BIGINT-INT64, ...):
 * nothing is cast. Checked when the model is planned; errors name the column and the ONNX input.
 */
@Internal
public final class SqlBinding implements Serializable {
    private static final long serialVersionUID = 1L;

    /** One column bound to one ONNX tensor. */
    public static final class Binding implements Serializable {
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

    public final List<Binding> inputs;
    public final List<Binding> outputs;
    /** Per bound output, its position among the OUTPUT columns. */
    private final int[] outputPositions;
    /** The position of the error column among the OUTPUT columns, or -1. */
    private final int errorPosition;
    /** The position of the model version column among the OUTPUT columns, or -1. */
    private final int versionPosition;

    private final int outputWidth;
    /** A text model ('tokenizer'): STRING columns in, the embedding or the label and score out. */
    private final boolean text;

    /** The role of a text model's output column (its binding's ONNX name; see {@link #bindText}). */
    static final String EMBEDDING = "embedding";

    static final String LABEL = "label";
    static final String SCORE = "score";

    private SqlBinding(
            List<Binding> inputs,
            List<Binding> outputs,
            int[] outputPositions,
            int errorPosition,
            int versionPosition,
            int outputWidth) {
        this(inputs, outputs, outputPositions, errorPosition, versionPosition, outputWidth, false);
    }

    private SqlBinding(
            List<Binding> inputs,
            List<Binding> outputs,
            int[] outputPositions,
            int errorPosition,
            int versionPosition,
            int outputWidth,
            boolean text) {
        this.text = text;
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
        this.outputPositions = outputPositions;
        this.errorPosition = errorPosition;
        this.versionPosition = versionPosition;
        this.outputWidth = outputWidth;
    }

    public static SqlBinding bind(
            String model, ModelSignature signature, List<Column> inputColumns, List<Column> outputColumns) {
        return bind(model, signature, inputColumns, outputColumns, null, null);
    }

    /**
     * Binds the columns; {@code errorColumn} and {@code versionColumn} (each optional, null) name STRING OUTPUT
     * columns bound to no ONNX output: why a row could not be scored (NULL when it was), and {@code version},
     * the model version that scored it.
     */
    public static SqlBinding bind(
            String model,
            ModelSignature signature,
            List<Column> inputColumns,
            List<Column> outputColumns,
            String errorColumn,
            String versionColumn) {
        int errorPosition = extraColumn(model, outputColumns, "error-column", errorColumn);
        int versionPosition = extraColumn(model, outputColumns, "model-version-column", versionColumn);
        if (errorPosition >= 0 && errorPosition == versionPosition) {
            throw new IllegalArgumentException("Model " + model + ": 'error-column' and 'model-version-column' both"
                    + " name '" + errorColumn + "'; give each its own OUTPUT column");
        }
        List<Column> bound = new ArrayList<>();
        int[] positions = new int[outputColumns.size()];
        int k = 0;
        for (int i = 0; i < outputColumns.size(); i++) {
            if (i != errorPosition && i != versionPosition) {
                bound.add(outputColumns.get(i));
                positions[k++] = i;
            }
        }
        return new SqlBinding(
                bindSide(model, "input", signature.inputs(), inputColumns),
                bindSide(model, "output", signature.outputs(), bound),
                Arrays.copyOf(positions, k),
                errorPosition,
                versionPosition,
                outputColumns.size());
    }

    /**
     * Binds a text model's columns (a model with a 'tokenizer'): one STRING INPUT column, the text, or two, a text
     * pair; OUTPUT either one {@code ARRAY<FLOAT>}, the sentence embedding, or a STRING label with an optional FLOAT
     * score (its probability), beside the optional error and version columns.
     */
    public static SqlBinding bindText(
            String model,
            List<Column> inputColumns,
            List<Column> outputColumns,
            String errorColumn,
            String versionColumn) {
        int errorPosition = extraColumn(model, outputColumns, "error-column", errorColumn);
        int versionPosition = extraColumn(model, outputColumns, "model-version-column", versionColumn);
        if (inputColumns.isEmpty() || inputColumns.size() > 2) {
            throw new IllegalArgumentException(
                    "Model " + model + " has a 'tokenizer': its INPUT is the text, one STRING"
                            + " column (or two, a text pair), not " + names(inputColumns));
        }
        List<Binding> inputs = new ArrayList<>();
        for (Column c : inputColumns) {
            if (!isString(c.getDataType().getLogicalType())) {
                throw new IllegalArgumentException("Model " + model + ": INPUT column '" + c.getName() + "' is "
                        + c.getDataType() + "; a model with a 'tokenizer' takes STRING text columns");
            }
            inputs.add(
                    new Binding(c.getName(), inputs.isEmpty() ? "text" : "pair text", ElementType.STRING, false, null));
        }
        List<Binding> outputs = new ArrayList<>();
        int[] positions = new int[outputColumns.size()];
        for (int i = 0; i < outputColumns.size(); i++) {
            if (i == errorPosition || i == versionPosition) {
                continue;
            }
            Column c = outputColumns.get(i);
            LogicalType type = c.getDataType().getLogicalType();
            String role;
            if (type.getTypeRoot() == LogicalTypeRoot.ARRAY
                    && ((ArrayType) type).getElementType().getTypeRoot() == LogicalTypeRoot.FLOAT) {
                role = EMBEDDING;
            } else if (isString(type)) {
                role = LABEL;
            } else if (type.getTypeRoot() == LogicalTypeRoot.FLOAT) {
                role = SCORE;
            } else {
                throw new IllegalArgumentException("Model " + model + ": OUTPUT column '" + c.getName() + "' is " + type
                        + "; a model with a 'tokenizer' gives an embedding (ARRAY<FLOAT>) or a label (STRING) and its"
                        + " score (FLOAT)");
            }
            positions[outputs.size()] = i;
            outputs.add(new Binding(c.getName(), role, ElementType.FLOAT, role.equals(EMBEDDING), null));
        }
        List<String> roles = outputs.stream().map(b -> b.onnxName).sorted().collect(Collectors.toList());
        if (!roles.equals(List.of(EMBEDDING))
                && !roles.equals(List.of(LABEL))
                && !roles.equals(List.of(LABEL, SCORE))) {
            throw new IllegalArgumentException("Model " + model + " has a 'tokenizer': declare its OUTPUT as"
                    + " (embedding ARRAY<FLOAT>) or (label STRING, score FLOAT), not " + names(outputColumns));
        }
        return new SqlBinding(
                inputs,
                outputs,
                Arrays.copyOf(positions, outputs.size()),
                errorPosition,
                versionPosition,
                outputColumns.size(),
                true);
    }

    private static boolean isString(LogicalType type) {
        return type.getTypeRoot() == LogicalTypeRoot.VARCHAR || type.getTypeRoot() == LogicalTypeRoot.CHAR;
    }

    /** Whether this binds a text model: its OUTPUT is an embedding (true) or a label (false). */
    public boolean textEmbedding() {
        return text && outputs.get(0).onnxName.equals(EMBEDDING);
    }

    /** Whether this binds a text model (see {@link #bindText}). */
    public boolean text() {
        return text;
    }

    /** A text model's output columns: {@code embedding}, or {@code label} and its probability. */
    public RowData textRow(float[] embedding, String label, float score) {
        GenericRowData row = newOutputRow();
        for (int k = 0; k < outputs.size(); k++) {
            switch (outputs.get(k).onnxName) {
                case EMBEDDING:
                    row.setField(outputPositions[k], SqlTypes.toArrayData(embedding));
                    break;
                case LABEL:
                    row.setField(outputPositions[k], StringData.fromString(label));
                    break;
                default:
                    row.setField(outputPositions[k], score);
            }
        }
        return row;
    }

    /** The position of the STRING OUTPUT column {@code name} set by {@code option}, -1 when none is set. */
    private static int extraColumn(String model, List<Column> outputColumns, String option, String name) {
        if (name == null) {
            return -1;
        }
        for (int i = 0; i < outputColumns.size(); i++) {
            if (outputColumns.get(i).getName().equals(name)) {
                LogicalTypeRoot root =
                        outputColumns.get(i).getDataType().getLogicalType().getTypeRoot();
                if ((root != LogicalTypeRoot.VARCHAR && root != LogicalTypeRoot.CHAR)
                        || !outputColumns.get(i).getDataType().getLogicalType().isNullable()) {
                    throw new IllegalArgumentException("Model " + model + ": the " + option + " '" + name + "' is "
                            + outputColumns.get(i).getDataType() + "; declare it as STRING (nullable)");
                }
                return i;
            }
        }
        throw new IllegalArgumentException("Model " + model + ": '" + option + "' = '" + name + "' is not one of its"
                + " OUTPUT columns " + names(outputColumns) + "; declare it, e.g. OUTPUT (..., " + name + " STRING)");
    }

    private static List<Binding> bindSide(String model, String side, List<TensorSpec> specs, List<Column> columns) {
        boolean byName = columns.stream()
                .allMatch(c -> specs.stream().anyMatch(s -> s.name().equals(c.getName())));
        if (!byName && columns.size() != specs.size()) {
            throw new IllegalArgumentException("Model " + model + ": " + side.toUpperCase() + " columns "
                    + names(columns) + " match neither the ONNX " + side + " names nor their count: the model has "
                    + RecordInputs.describe(specs));
        }
        List<Binding> out = new ArrayList<>();
        for (int i = 0; i < columns.size(); i++) {
            Column c = columns.get(i);
            TensorSpec spec = byName
                    ? specs.stream()
                            .filter(s -> s.name().equals(c.getName()))
                            .findFirst()
                            .get()
                    : specs.get(i);
            out.add(bindColumn(model, side, c, spec));
        }
        return out;
    }

    private static Binding bindColumn(String model, String side, Column c, TensorSpec spec) {
        LogicalType type = c.getDataType().getLogicalType();
        boolean array = type.getTypeRoot() == LogicalTypeRoot.ARRAY;
        LogicalType element = array ? ((ArrayType) type).getElementType() : type;
        ElementType expected = SqlTypes.elementType(element.getTypeRoot());
        String where = "Model " + model + ": " + side.toUpperCase() + " column '" + c.getName() + "' (" + type
                + ") is bound to ONNX " + side + " " + spec;
        if (spec.kind() != TensorSpec.Kind.TENSOR) {
            throw new IllegalArgumentException(where + ", which is not a tensor");
        }
        boolean compatible = expected != null && SqlTypes.feeds(expected, spec.elementType());
        if (expected == null || !compatible) {
            throw new IllegalArgumentException(where + ": the types differ (" + (expected == null ? element : expected)
                    + " vs " + spec.elementType() + "); declare the column as " + SqlTypes.sqlName(spec.elementType())
                    + " or ARRAY<" + SqlTypes.sqlName(spec.elementType()) + ">");
        }
        long[] scalarShape = null;
        if (!array) {
            List<Dim> dims = spec.recordDims();
            if (dims.isEmpty()) {
                scalarShape = new long[0];
            } else if (dims.size() == 1
                    && (!dims.get(0).isFixed() || dims.get(0).value() == 1)) {
                scalarShape = new long[] {1};
            } else {
                throw new IllegalArgumentException(where + ": a scalar column needs a [batch] or [batch,1] tensor,"
                        + " this one takes " + RecordInputs.shapeOf(dims) + " per record; declare the column as ARRAY<"
                        + SqlTypes.sqlName(spec.elementType()) + ">");
            }
        }
        return new Binding(c.getName(), spec.name(), spec.elementType(), array, scalarShape);
    }

    private static String names(List<Column> columns) {
        return columns.stream()
                .map(Column::getName)
                .collect(Collectors.toList())
                .toString();
    }

    /** The input values of {@code row} as fresh Java arrays (the planner may reuse the row afterwards). */
    public Object[] values(RowData row) {
        Object[] values = new Object[inputs.size()];
        for (int i = 0; i < inputs.size(); i++) {
            Binding b = inputs.get(i);
            if (text) {
                if (row.isNullAt(i)) {
                    throw new RecordConversionException(
                            "Column '" + b.column + "' is NULL: there is no " + b.onnxName + " to score");
                }
                values[i] = row.getString(i).toString();
                continue;
            }
            if (row.isNullAt(i)) {
                throw new RecordConversionException(
                        "Column '" + b.column + "' is NULL; ONNX input '" + b.onnxName + "' needs a value");
            }
            if (b.array) {
                ArrayData a = row.getArray(i);
                for (int k = 0; k < a.size(); k++) {
                    if (a.isNullAt(k)) {
                        throw new RecordConversionException("Element " + k + " of column '" + b.column
                                + "' is NULL; ONNX input '" + b.onnxName + "' takes "
                                + (b.type == ElementType.STRING ? "strings" : "numbers") + ", not NULLs");
                    }
                }
                values[i] = SqlTypes.fromArray(a, b.type);
            } else {
                values[i] = SqlTypes.fromScalar(row, i, b.type);
            }
        }
        return values;
    }

    /** Puts converted values into a record's inputs. */
    public void encode(Object[] values, InputRow row) {
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
    public RowData decode(OutputRow out) {
        GenericRowData row = newOutputRow();
        for (int k = 0; k < outputs.size(); k++) {
            Binding b = outputs.get(k);
            int i = outputPositions[k];
            Object values = out.value(b.onnxName);
            if (b.array) {
                row.setField(i, SqlTypes.toArrayData(values));
            } else {
                if (Array.getLength(values) != 1) {
                    throw new RecordConversionException("Output column '" + b.column + "' is a scalar but ONNX output '"
                            + b.onnxName + "' gave " + Array.getLength(values) + " values per record");
                }
                Object v = Array.get(values, 0);
                row.setField(i, v instanceof String ? StringData.fromString((String) v) : v);
            }
        }
        return row;
    }

    /** The output columns of a row that could not be scored: NULL, and the reason in the error column. */
    public RowData failed(String reason) {
        GenericRowData row = newOutputRow();
        if (errorPosition >= 0) {
            row.setField(errorPosition, StringData.fromString(reason));
        }
        return row;
    }

    private GenericRowData newOutputRow() {
        return new GenericRowData(outputWidth);
    }

    /**
     * Puts {@code version} (the model that scored, or tried to score, the row) in the version column, if one
     * is declared; {@code row} is one this binding made.
     */
    public RowData stampVersion(RowData row, String version) {
        if (versionPosition >= 0) {
            ((GenericRowData) row).setField(versionPosition, StringData.fromString(version));
        }
        return row;
    }

    /** Whether an error column was declared. */
    public boolean hasErrorColumn() {
        return errorPosition >= 0;
    }
}
