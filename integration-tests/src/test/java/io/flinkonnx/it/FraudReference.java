package io.flinkonnx.it;

import io.flinkonnx.model.TensorData;
import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;

/**
 * The bundled fraud model computed in plain Java from its own initializers (read with protobuf-java, not
 * ONNX Runtime): Gemm, ReLU, Gemm, softmax.
 */
final class FraudReference {
    private final float[] w1;
    private final float[] b1;
    private final float[] w2;
    private final float[] b2;
    private final int in;
    private final int hidden;

    private FraudReference(Map<String, TensorData> init) {
        w1 = (float[]) init.get("w1").values();
        b1 = (float[]) init.get("b1").values();
        w2 = (float[]) init.get("w2").values();
        b2 = (float[]) init.get("b2").values();
        in = (int) init.get("w1").dims()[0];
        hidden = (int) init.get("w1").dims()[1];
    }

    static FraudReference load() throws Exception {
        return of(bundled());
    }

    /** The bundled model's protobuf. */
    static ModelProto bundled() throws Exception {
        try (InputStream model = FraudReference.class.getResourceAsStream("/models/fraud-mlp.onnx")) {
            return ModelProto.parseFrom(model);
        }
    }

    /** The reference of a model of the bundled one's graph, from its own initializers. */
    static FraudReference of(ModelProto proto) {
        Map<String, TensorData> init = new HashMap<>();
        for (TensorProto t : proto.getGraph().getInitializerList()) {
            init.put(t.getName(), TensorData.of(t));
        }
        return new FraudReference(init);
    }

    /**
     * Another version of the bundled model, same signature: the output layer's weights and biases negated, so
     * the two probabilities trade places.
     */
    static ModelProto secondVersion() throws Exception {
        ModelProto proto = bundled();
        var graph = proto.getGraph().toBuilder();
        for (int i = 0; i < graph.getInitializerCount(); i++) {
            TensorProto t = graph.getInitializer(i);
            if (t.getName().equals("w2") || t.getName().equals("b2")) {
                float[] values = (float[]) TensorData.of(t).values();
                java.nio.ByteBuffer raw =
                        java.nio.ByteBuffer.allocate(values.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                for (float v : values) {
                    raw.putFloat(-v);
                }
                graph.setInitializer(
                        i,
                        t.toBuilder()
                                .clearFloatData()
                                .setRawData(com.google.protobuf.ByteString.copyFrom(raw.array())));
            }
        }
        return proto.toBuilder().setGraph(graph).build();
    }

    float[] probabilities(float[] x) {
        double[] h = new double[hidden];
        for (int j = 0; j < hidden; j++) {
            double s = b1[j];
            for (int k = 0; k < in; k++) {
                s += x[k] * w1[k * hidden + j];
            }
            h[j] = Math.max(0, s);
        }
        double z0 = b2[0];
        double z1 = b2[1];
        for (int j = 0; j < hidden; j++) {
            z0 += h[j] * w2[j * 2];
            z1 += h[j] * w2[j * 2 + 1];
        }
        double m = Math.max(z0, z1);
        double e0 = Math.exp(z0 - m);
        double e1 = Math.exp(z1 - m);
        return new float[] {(float) (e0 / (e0 + e1)), (float) (e1 / (e0 + e1))};
    }
}
