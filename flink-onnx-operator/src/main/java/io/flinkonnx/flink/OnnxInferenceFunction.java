package io.flinkonnx.flink;

import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.engine.InferenceRunner;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.metrics.MetricGroup;

/**
 * Scores each record with an ONNX model, one record per ORT run, on the session shared by its task slot.
 * Built from an {@link OnnxInferenceSpec}:
 *
 * <pre>{@code
 * DataStream<Scored> scored = transactions.map(
 *         OnnxInference.<Txn>builder("s3://models/fraud.onnx")
 *                 .providers("cuda > cpu")
 *                 .encoder((txn, row) -> row.put("features", txn.features()))
 *                 .decoder((txn, out) -> new Scored(txn.id(), out.floats("score")[0]), Types.POJO(Scored.class))
 *                 .buildFunction());
 * }</pre>
 *
 * <p>A record that does not fit the model fails the task with a {@link RecordConversionException} naming
 * the input and the mismatch; the batching operator routes such records to a dead-letter output instead.
 *
 * @param <IN> the record type
 * @param <OUT> the result type
 */
@PublicEvolving
public class OnnxInferenceFunction<IN, OUT> extends RichMapFunction<IN, OUT> implements ResultTypeQueryable<OUT> {
    private static final long serialVersionUID = 1L;

    private final OnnxInferenceSpec<IN, OUT> spec;
    private transient InferenceRunner<IN, OUT> runner;

    /**
     * A map function scoring each record with {@code spec}; the session is loaded at open.
     *
     * @param spec the inference, not null
     * @throws NullPointerException when {@code spec} is null
     */
    public OnnxInferenceFunction(OnnxInferenceSpec<IN, OUT> spec) {
        this.spec = Objects.requireNonNull(spec, "spec");
    }

    /**
     * The inference this function runs.
     *
     * @return the spec given at construction
     */
    public OnnxInferenceSpec<IN, OUT> spec() {
        return spec;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        runner = new InferenceRunner<>(spec);
        String slot = getRuntimeContext().getTaskInfo().getAllocationIDAsString();
        int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        MetricGroup metrics = getRuntimeContext().getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        runner.open(slot, subtask, metrics);

        // A map function has no side outputs: drift reports go to the gauges and the log.
        DriftMonitor.checkGoldenIfDue(runner.drift());
    }

    @Override
    public OUT map(IN value) throws Exception {
        DriftMonitor.checkGoldenIfDue(runner.drift());
        return runner.infer(value);
    }

    /**
     * The drift monitor of this instance (open after {@link #open}). Public for the drift package's tests only:
     * not API.
     *
     * @return the drift monitor of the runner this function opened
     */
    @VisibleForTesting
    public DriftMonitor<IN> drift() {
        return runner.drift();
    }

    @Override
    public void close() throws Exception {
        if (runner != null) {
            runner.close();
            runner = null;
        }
    }

    @Override
    public TypeInformation<OUT> getProducedType() {
        return spec.resultType();
    }
}
