package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.testing.OnnxGraph;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** ONNX golden vectors through {@link ModelChecks#verify}: real models, real ORT sessions, real .pb files. */
class GoldenVectorsTest {
    @TempDir Path dir;

    @Test
    void uint8GoldenVectorOf255AgainstExpected0FailsVerification() throws Exception {
        Path model = new OnnxGraph("uint8_identity")
                .input("x", ElementType.UINT8, 3)
                .output("y", ElementType.UINT8, 3)
                .node("Identity", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve("u8.onnx"));
        Path set = Files.createDirectories(dir.resolve("u8/test_data_set_0"));
        Files.write(set.resolve("input_0.pb"), bytes("x", ElementType.UINT8, new byte[] {(byte) 255, 7, 9}).toByteArray());
        Files.write(set.resolve("output_0.pb"), bytes("y", ElementType.UINT8, new byte[] {0, 7, 9}).toByteArray());

        List<ModelChecks.SetResult> results = ModelChecks.verify(ModelSource.of(model.toString()), dir.resolve("u8"),
                DriftTolerance.defaults());

        assertThat(results).hasSize(1);
        ModelChecks.SetResult r = results.get(0);
        assertThat(r.error).isNull();
        assertThat(r.passed()).as("255 against an expected 0 on a UINT8 output").isFalse();
        OutputDrift y = r.report.outputs.get(0);
        assertThat(y.maxAbsError).isEqualTo(255);
        assertThat(y.withinTolerance).isFalse();
    }

    static TensorProto bytes(String name, ElementType type, byte... values) {
        return TensorProto.newBuilder().setName(name).setDataType(type.onnxCode()).addDims(values.length)
                .setRawData(ByteString.copyFrom(values)).build();
    }
}
