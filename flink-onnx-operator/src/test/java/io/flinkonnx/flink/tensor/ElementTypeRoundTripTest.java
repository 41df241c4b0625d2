package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorData;
import io.flinkonnx.model.testing.OnnxGraph;
import java.lang.reflect.Array;
import java.nio.file.Path;
import org.apache.flink.api.common.typeinfo.Types;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Every element type ORT's Java API can create goes through record conversion and comes back unchanged. */
class ElementTypeRoundTripTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(
            value = ElementType.class,
            names = {
                "FLOAT",
                "DOUBLE",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "UINT8",
                "BOOL",
                "STRING",
                "FLOAT16",
                "BFLOAT16"
            })
    void valuesRoundTripThroughAnIdentityModel(ElementType type) throws Exception {
        Path model = new OnnxGraph("identity_" + type)
                .input("x", type, "batch", 4)
                .output("y", type, "batch", 4)
                .node("Identity", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve(type + ".onnx"));
        Object values = sample(type);
        OnnxInferenceSpec<Object, String> spec = OnnxInference.<Object>builder(model.toString())
                .encoder((v, row) -> row.put("x", v))
                .decoder((v, out) -> render(out.value("y")), Types.STRING)
                .build();
        try (InferenceRunner<Object, String> runner = Runners.open(spec)) {
            // FLOAT16 and BFLOAT16 go in as raw bits and come back widened to float, as ORT returns them.
            Object expected = HalfFloats.isHalf(type)
                    ? HalfFloats.widen(new TensorData("x", type, new long[] {4}, values))
                    : values;
            assertThat(runner.infer(values)).isEqualTo(render(expected));
        }
    }

    private static Object sample(ElementType type) {
        switch (type) {
            case FLOAT:
                return new float[] {1.5f, -2.25f, 0f, Float.MAX_VALUE};
            case DOUBLE:
                return new double[] {1e-300, -2.5, 0, Math.PI};
            case INT8:
            case UINT8:
                return new byte[] {-128, -1, 0, 127};
            case INT16:
                return new short[] {Short.MIN_VALUE, -1, 0, Short.MAX_VALUE};
            case FLOAT16:
                return new short[] {0x3C00, (short) 0xC000, 0x0000, 0x7BFF}; // 1, -2, 0, 65504
            case BFLOAT16:
                return new short[] {0x3F80, (short) 0xC040, 0x0000, 0x4049}; // 1, -3, 0, 3.140625
            case INT32:
                return new int[] {Integer.MIN_VALUE, -1, 0, Integer.MAX_VALUE};
            case INT64:
                return new long[] {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE};
            case BOOL:
                return new boolean[] {true, false, false, true};
            case STRING:
                return new String[] {"card", "", "ünïcode", "wire"};
            default:
                throw new IllegalArgumentException(type.name());
        }
    }

    private static String render(Object array) {
        StringBuilder sb = new StringBuilder(array.getClass().getSimpleName());
        for (int i = 0; i < Array.getLength(array); i++) {
            sb.append(' ').append(Array.get(array, i));
        }
        return sb.toString();
    }
}
