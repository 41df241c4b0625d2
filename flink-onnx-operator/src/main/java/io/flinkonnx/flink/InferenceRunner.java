package io.flinkonnx.flink;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.util.Map;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;

/**
 * The engine behind every entry point: acquires the slot's shared session, converts records to tensors
 * and outputs to results, and releases the session. Not thread-safe: one per operator instance.
 */
final class InferenceRunner<IN, OUT> implements AutoCloseable {
    static final String METRIC_GROUP = "onnx";

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final String modelName;
    private SharedSession shared;
    private ModelSignature signature;
    private TensorPacker packer;
    private RecordInputs[] rows;
    private BatchOutputs outputs;

    InferenceRunner(OnnxInferenceSpec<IN, OUT> spec) {
        this.spec = spec;
        this.modelName = spec.model().uri();
    }

    /**
     * Fetches and checks the model, then joins (or opens) the session of {@code slot}. Fails at job start
     * on a bad model or signature, with a message naming the model and the cause.
     */
    void open(String slot, MetricGroup metrics) throws Exception {
        try (LocalModel model = spec.model().fetch()) {
            SessionRegistry.Key key = new SessionRegistry.Key(slot, model.sha256(), spec.providers(),
                    spec.sessionSettings());
            shared = SessionRegistry.INSTANCE.acquire(key,
                    k -> SessionLoader.load(k, model, spec.providers(), spec.sessionSettings()));
        }
        try {
            signature = spec.batchAxis() == null ? shared.signature() : shared.signature().withBatchAxis(spec.batchAxis());
            if (spec.signatureCheck() != null) {
                spec.signatureCheck().check(signature, modelName);
            }
            for (TensorSpec input : signature.inputs()) {
                if (input.kind() != TensorSpec.Kind.TENSOR || !input.elementType().isSupportedForRecords()) {
                    throw new IllegalArgumentException("Model " + modelName + " has input " + input
                            + ", which records cannot feed yet (supported: tensors of FLOAT, DOUBLE, INT64, INT32,"
                            + " INT16, INT8, UINT8, BOOL, STRING)");
                }
            }
            packer = new TensorPacker(OrtRuntime.env(), signature.inputs());
            rows = new RecordInputs[] {new RecordInputs(modelName, signature.inputs())};
            outputs = new BatchOutputs(modelName, signature.outputs());
            registerMetrics(metrics);
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    private void registerMetrics(MetricGroup metrics) {
        if (metrics == null) {
            return;
        }
        MetricGroup group = metrics.addGroup(METRIC_GROUP);
        long loadTime = shared.loadTimeMillis();
        long size = shared.modelSizeBytes();
        group.gauge("load_model_latency_milli_secs", (Gauge<Long>) () -> loadTime);
        group.gauge("model_byte_size", (Gauge<Long>) () -> size);
        group.gauge("openSessions", (Gauge<Integer>) SessionRegistry.INSTANCE::openSessions);
    }

    /** Scores one record. */
    OUT infer(IN record) throws Exception {
        RecordInputs row = rows[0];
        row.reset();
        try {
            spec.encoder().encode(record, row);
        } catch (RecordConversionException e) {
            throw e;
        } catch (Exception e) {
            throw new RecordConversionException("The encoder failed on a record for model " + modelName + ": " + e, e);
        }
        row.checkComplete();
        Map<String, OnnxTensor> tensors = packer.pack(rows, 1);
        try (OrtSession.Result result = shared.session().run(tensors)) {
            outputs.load(result, 1);
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
        return spec.decoder().decode(record, outputs.at(0));
    }

    ModelSignature signature() {
        return signature;
    }

    SharedSession session() {
        return shared;
    }

    @Override
    public void close() {
        if (shared != null) {
            SessionRegistry.INSTANCE.release(shared);
            shared = null;
        }
    }
}
