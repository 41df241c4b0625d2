package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.InputRow;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.TensorSpec;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.FunctionDefinition;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.ArgumentCount;
import org.apache.flink.table.types.inference.CallContext;
import org.apache.flink.table.types.inference.ConstantArgumentCount;
import org.apache.flink.table.types.inference.InputTypeStrategy;
import org.apache.flink.table.types.inference.Signature;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.types.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An ONNX model as a SQL scalar function. The result type comes from the model: {@code ARRAY} of the
 * output's type for a one-output model, a {@code ROW} of the named outputs otherwise.
 *
 * <pre>
 * -- SQL: the model URI is the first (literal) argument
 * CREATE FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxScoreFunction';
 * SELECT id, score('s3://models/fraud.onnx', features) FROM txns;          -- features ARRAY&lt;FLOAT&gt;
 * SELECT id, score('s3://models/fraud.onnx', f1, f2, f3, f4) FROM txns;    -- four FLOAT columns, one input row
 * </pre>
 *
 * <pre>{@code
 * // Table API: an instance bound to a model, called without the URI
 * tEnv.createTemporarySystemFunction("fraud", new OnnxScoreFunction("s3://models/fraud.onnx"));
 * tEnv.sqlQuery("SELECT id, fraud(features) FROM txns");
 * }</pre>
 *
 * Arguments bind to the ONNX inputs by position ({@code ARRAY} = one row of the batch axis, a scalar = a
 * [batch] or [batch,1] tensor), or, for a one-input model, as many scalars as the input's row width.
 * Wrong arity or types fail at planning, naming the ONNX input. One ORT run per call, on the slot's shared
 * session; for micro-batching use ML_PREDICT.
 */
@PublicEvolving
public class OnnxScoreFunction extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private static final Map<String, ModelSignature> SIGNATURES = new ConcurrentHashMap<>();
    private static final Logger LOG = LoggerFactory.getLogger(OnnxScoreFunction.class);

    private final String boundModel;
    private final boolean nullOnError;
    /**
     * The most models one instance scores with: Flink's code generation shares one instance between the calls
     * of a query, so {@code score('a.onnx', x), score('b.onnx', x)} reach the same instance with two models.
     */
    public static final int MAX_MODELS_PER_INSTANCE = 16;

    /** One runner per model argument, opened at the first call that names it; in first-use order. */
    private transient Map<String, InferenceRunner<Object[], Object>> runners;
    /** The model of the last call and its runner: most calls name the same model as the one before. */
    private transient String lastModel;

    private transient InferenceRunner<Object[], Object> lastRunner;
    private transient FunctionContext context;

    /** For SQL {@code CREATE FUNCTION}: the model URI is the first argument of every call. */
    public OnnxScoreFunction() {
        this(null);
    }

    /** Bound to {@code modelUri}: calls pass only the model's inputs. */
    public OnnxScoreFunction(String modelUri) {
        this(modelUri, false);
    }

    /**
     * Bound to {@code modelUri} (or null: the URI is the first argument); with {@code nullOnError} a row the
     * model cannot score (a NULL element, a length it refuses, a failing run) returns NULL instead of failing
     * the job. {@link OnnxScoreOrNullFunction} is the SQL {@code CREATE FUNCTION} form of that.
     */
    public OnnxScoreFunction(String modelUri, boolean nullOnError) {
        this.boundModel = modelUri;
        this.nullOnError = nullOnError;
    }

    @Override
    public void open(FunctionContext context) {
        this.context = context;
    }

    /** Scores one row; arguments as described in the class comment. */
    public Object eval(Object... args) throws Exception {
        int first = boundModel == null ? 1 : 0;
        InferenceRunner<Object[], Object> runner =
                runnerFor(boundModel != null ? boundModel : args[0] == null ? null : args[0].toString());
        Object[] values = new Object[args.length - first];
        for (int i = first; i < args.length; i++) {
            values[i - first] = args[i];
        }
        if (!nullOnError) {
            return runner.infer(values);
        }
        try {
            return runner.infer(values);
        } catch (SystemicFailureException e) {
            throw e; // the session is broken, not the row: the job fails and its restart reloads it
        } catch (Exception e) {
            LOG.debug("Row not scored by {}, NULL returned: {}", runner.modelName(), e.getMessage());
            return null;
        }
    }

    /** The runner of model {@code uri}, opened at its first call. */
    private InferenceRunner<Object[], Object> runnerFor(String uri) throws Exception {
        if (uri == null) {
            throw new IllegalArgumentException("The model URI of an ONNX score function is NULL");
        }
        if (uri.equals(lastModel)) {
            return lastRunner;
        }
        if (runners == null) {
            runners = new LinkedHashMap<>();
        }
        InferenceRunner<Object[], Object> runner = runners.get(uri);
        if (runner == null) {
            if (runners.size() >= MAX_MODELS_PER_INSTANCE) {
                throw new IllegalArgumentException("An ONNX score function instance scores with at most "
                        + MAX_MODELS_PER_INSTANCE + " different models (one session each), and model " + uri
                        + " would be one more beyond " + runners.keySet()
                        + ": pass the model as a literal, or split the query");
            }
            // The first model keeps the library's metric group; further ones are told apart by a 'model' variable.
            runner = openRunner(uri, runners.isEmpty());
            runners.put(uri, runner);
        }
        lastModel = uri;
        lastRunner = runner;
        return runner;
    }

    private InferenceRunner<Object[], Object> openRunner(String uri, boolean first) throws Exception {
        ModelSignature signature = signature(uri);
        OnnxInferenceSpec<Object[], Object> spec = OnnxInference.<Object[]>builder(uri)
                .encoder((values, row) -> encode(signature, values, row))
                .decoder((values, out) -> decode(signature, out), null)
                .buildUnchecked();
        InferenceRunner<Object[], Object> r = new InferenceRunner<>(spec);
        r.open(
                context == null ? "sql-function" : context.getTaskInfo().getAllocationIDAsString(),
                context == null ? 0 : context.getTaskInfo().getIndexOfThisSubtask(),
                context == null ? null : metricGroup(context, uri, first));
        return r;
    }

    static MetricGroup metricGroup(FunctionContext context, String uri, boolean first) {
        MetricGroup metrics = context.getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        return first ? metrics : metrics.addGroup("model", uri);
    }

    static void encode(ModelSignature signature, Object[] values, InputRow row) {
        List<TensorSpec> inputs = signature.inputs();
        if (inputs.size() == 1 && values.length > 1) {
            TensorSpec in = inputs.get(0);
            Object packed = Array.newInstance(in.elementType().javaArrayType().getComponentType(), values.length);
            for (int i = 0; i < values.length; i++) {
                if (values[i] == null) {
                    throw new RecordConversionException(
                            "Argument " + (i + 1) + " for ONNX input '" + in.name() + "' is NULL");
                }
                Array.set(packed, i, values[i]);
            }
            row.put(in.name(), packed);
            return;
        }
        for (int i = 0; i < inputs.size(); i++) {
            TensorSpec in = inputs.get(i);
            Object v = values[i];
            if (v != null && v.getClass().isArray()) {
                // a primitive array is already the input's values (the async function converts on its task thread)
                row.put(
                        in.name(),
                        v.getClass().getComponentType().isPrimitive() ? v : SqlTypes.unbox(v, in.elementType()));
            } else {
                Object one = Array.newInstance(in.elementType().javaArrayType().getComponentType(), 1);
                if (v == null) {
                    throw new RecordConversionException("Argument for ONNX input '" + in.name() + "' is NULL");
                }
                Array.set(one, 0, v);
                row.put(in.name(), one, in.recordDims().isEmpty() ? new long[0] : new long[] {1});
            }
        }
    }

    /** The outputs as Flink's internal data: an {@code ArrayData}, or a {@code RowData} of them. */
    static Object decodeInternal(ModelSignature signature, OutputRow out) {
        List<TensorSpec> outputs = signature.outputs();
        if (outputs.size() == 1) {
            return SqlTypes.toArrayData(out.value(outputs.get(0).name()));
        }
        GenericRowData row = new GenericRowData(outputs.size());
        for (int i = 0; i < outputs.size(); i++) {
            row.setField(i, SqlTypes.toArrayData(out.value(outputs.get(i).name())));
        }
        return row;
    }

    static Object decode(ModelSignature signature, OutputRow out) {
        List<TensorSpec> outputs = signature.outputs();
        if (outputs.size() == 1) {
            return SqlTypes.box(out.value(outputs.get(0).name()));
        }
        Row row = Row.withNames();
        for (TensorSpec o : outputs) {
            row.setField(o.name(), SqlTypes.box(out.value(o.name())));
        }
        return row;
    }

    @Override
    public void close() {
        lastModel = null;
        lastRunner = null;
        if (runners != null) {
            RuntimeException failure = null;
            for (InferenceRunner<Object[], Object> runner : runners.values()) {
                try {
                    runner.close();
                } catch (RuntimeException e) {
                    if (failure == null) {
                        failure = e;
                    } else {
                        failure.addSuppressed(e);
                    }
                }
            }
            runners = null;
            if (failure != null) {
                throw failure;
            }
        }
    }

    /** The runner opened for model {@code uri}, or null (for tests). */
    @VisibleForTesting
    public InferenceRunner<Object[], Object> runner(String uri) {
        return runners == null ? null : runners.get(uri);
    }

    static ModelSignature signature(String uri) {
        return SIGNATURES.computeIfAbsent(uri, u -> {
            try (LocalModel model = ModelSource.of(u).fetch()) {
                return model.signature().orElseGet(() -> SessionLoader.signatureOf(model));
            }
        });
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return typeInference(boundModel, false);
    }

    /**
     * The type inference of a score function bound to {@code boundModel} (null: the URI is the first argument),
     * shared with {@link OnnxAsyncScoreFunction}; with {@code internalResult} the result is Flink's internal data
     * ({@code ArrayData}, {@code RowData}), which Flink's async scalar operator passes on as it is (it cannot
     * convert a NULL result in 2.3), and ARRAY arguments come as {@code ArrayData} (no boxing per element).
     */
    static TypeInference typeInference(String boundModel, boolean internalResult) {
        return TypeInference.newBuilder()
                .inputTypeStrategy(new InputTypeStrategy() {
                    @Override
                    public ArgumentCount getArgumentCount() {
                        return ConstantArgumentCount.from(boundModel == null ? 2 : 1);
                    }

                    @Override
                    public Optional<List<DataType>> inferInputTypes(CallContext call, boolean throwOnFailure) {
                        return Optional.of(inferArguments(boundModel, internalResult, call));
                    }

                    @Override
                    public List<Signature> getExpectedSignatures(FunctionDefinition d) {
                        return List.of(Signature.of(
                                Signature.Argument.of(boundModel == null ? "model, inputs..." : "inputs...")));
                    }
                })
                .outputTypeStrategy(call -> {
                    DataType result = resultType(modelOf(boundModel, call));
                    return Optional.of(
                            internalResult
                                    ? result.bridgedTo(
                                            result.getLogicalType().getTypeRoot() == LogicalTypeRoot.ARRAY
                                                    ? ArrayData.class
                                                    : RowData.class)
                                    : result);
                })
                .build();
    }

    private static String modelOf(String boundModel, CallContext call) {
        if (boundModel != null) {
            return boundModel;
        }
        return call.getArgumentValue(0, String.class)
                .orElseThrow(() -> call.newValidationError(
                        "The first argument of an ONNX score function is the model URI, as a string literal"));
    }

    /** The argument types; with {@code internalArrays}, ARRAY arguments come as Flink's {@code ArrayData}. */
    private static List<DataType> inferArguments(String boundModel, boolean internalArrays, CallContext call) {
        String uri = modelOf(boundModel, call);
        ModelSignature signature = signature(uri);
        List<DataType> given = call.getArgumentDataTypes();
        int first = boundModel == null ? 1 : 0;
        List<DataType> args = new ArrayList<>(given.subList(first, given.size()));
        List<TensorSpec> inputs = signature.inputs();
        List<DataType> result = new ArrayList<>();
        if (boundModel == null) {
            result.add(DataTypes.STRING());
        }
        boolean packedScalars = inputs.size() == 1 && args.size() > 1;
        if (!packedScalars && args.size() != inputs.size()) {
            throw call.newValidationError("Model " + uri + " takes " + inputs.size() + " input(s) ("
                    + RecordInputs.describe(inputs) + "); the call gives " + args.size() + " argument(s)");
        }
        for (int i = 0; i < args.size(); i++) {
            TensorSpec in = inputs.get(packedScalars ? 0 : i);
            LogicalType type = args.get(i).getLogicalType();
            boolean array = type.getTypeRoot() == LogicalTypeRoot.ARRAY;
            LogicalType element = array ? type.getChildren().get(0) : type;
            DataType expected = SqlTypes.dataType(in.elementType());
            if (expected == null
                    || !element.getTypeRoot().equals(expected.getLogicalType().getTypeRoot())
                    || (packedScalars && array)) {
                throw call.newValidationError("Argument " + (i + first + 1) + " (" + type + ") does not fit ONNX input "
                        + in + ": expected " + (packedScalars ? "" : "ARRAY<" + expected + "> or ") + expected
                        + " (values are never cast)");
            }
            if (packedScalars) {
                List<Dim> dims = in.recordDims();
                if (dims.size() != 1 || !dims.get(0).isFixed() || dims.get(0).value() != args.size()) {
                    throw call.newValidationError("Model " + uri + " input " + in + " does not take " + args.size()
                            + " scalars per row; pass one ARRAY argument");
                }
            }
            DataType bridged = !array
                    ? expected
                    : internalArrays
                            ? DataTypes.ARRAY(expected).bridgedTo(ArrayData.class)
                            : DataTypes.ARRAY(expected).bridgedTo(SqlTypes.boxedArray(in.elementType()));
            result.add(bridged);
        }
        return result;
    }

    private static DataType resultType(String uri) {
        List<TensorSpec> outputs = signature(uri).outputs();
        if (outputs.size() == 1) {
            return DataTypes.ARRAY(sqlTypeOrFail(outputs.get(0)));
        }
        List<DataTypes.Field> fields = new ArrayList<>();
        for (TensorSpec o : outputs) {
            fields.add(DataTypes.FIELD(o.name(), DataTypes.ARRAY(sqlTypeOrFail(o))));
        }
        return DataTypes.ROW(fields.toArray(new DataTypes.Field[0]));
    }

    private static DataType sqlTypeOrFail(TensorSpec o) {
        DataType t = SqlTypes.dataType(o.elementType());
        if (t == null || o.kind() != TensorSpec.Kind.TENSOR) {
            throw new IllegalArgumentException("ONNX output " + o + " has no SQL type");
        }
        return t;
    }
}
