package io.flinkonnx.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** TensorProto files are checked against what they declare before anything is allocated. */
class TensorDataTest {
    @TempDir
    Path dir;

    @Test
    void aTinyFileDeclaringHalfAGibiFloatsIsRefusedBeforeAllocating() throws IOException {
        // 2^29 floats (2 GiB) declared, 4 bytes present: allocating first would exhaust the test's 2 GiB heap.
        Path file = write(
                "huge.pb",
                TensorProto.newBuilder()
                        .setName("x")
                        .setDataType(1)
                        .addDims(1L << 29)
                        .setRawData(ByteString.copyFrom(new byte[4])));
        assertThat(Files.size(file)).isLessThanOrEqualTo(26);
        assertThatThrownBy(() -> TensorData.read(file))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("dims [536870912]")
                .hasMessageContaining("2147483648 bytes")
                .hasMessageContaining("holds 4 bytes");
    }

    @Test
    void shortTypedDataIsRefusedNamingTheFile() throws IOException {
        Path file = write(
                "short.pb",
                TensorProto.newBuilder()
                        .setName("x")
                        .setDataType(1)
                        .addDims(2)
                        .addDims(3)
                        .addFloatData(1f)
                        .addFloatData(2f));
        assertThatThrownBy(() -> TensorData.read(file))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("dims [2, 3]")
                .hasMessageContaining("6 elements")
                .hasMessageContaining("holds 2");
    }

    @Test
    void aNegativeDimIsRefusedNamingTheFile() throws IOException {
        Path file = write(
                "negative.pb",
                TensorProto.newBuilder().setName("x").setDataType(1).addDims(-1).addDims(3));
        assertThatThrownBy(() -> TensorData.read(file))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("negative dimension -1")
                .hasMessageContaining("dims [-1, 3]");
    }

    @Test
    void dimsWhoseProductOverflowsAreRefusedNamingTheFile() throws IOException {
        Path file = write(
                "product.pb",
                TensorProto.newBuilder()
                        .setName("x")
                        .setDataType(1)
                        .addDims(1L << 32)
                        .addDims(1L << 32)
                        .setRawData(ByteString.copyFrom(new byte[4])));
        assertThatThrownBy(() -> TensorData.read(file))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("dims [4294967296, 4294967296]")
                .hasMessageContaining("overflows");
    }

    @Test
    void moreElementsThanOneJavaArrayHoldsAreRefusedNamingTheFile() throws IOException {
        Path file = write(
                "wide.pb",
                TensorProto.newBuilder()
                        .setName("x")
                        .setDataType(2)
                        .addDims(1L << 16)
                        .addDims(1L << 16)
                        .setRawData(ByteString.copyFrom(new byte[4])));
        assertThatThrownBy(() -> TensorData.read(file))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(file.toString())
                .hasMessageContaining("4294967296 elements")
                .hasMessageContaining("Java array");
    }

    @Test
    void readsRawAndTypedTensorsThatHoldWhatTheyDeclare() throws IOException {
        ByteBuffer raw = ByteBuffer.allocate(12)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putFloat(1f)
                .putFloat(2f)
                .putFloat(3f);
        TensorData rawFloats = TensorData.read(write(
                "raw.pb",
                TensorProto.newBuilder()
                        .setName("r")
                        .setDataType(1)
                        .addDims(1)
                        .addDims(3)
                        .setRawData(ByteString.copyFrom(raw.array()))));
        assertThat(rawFloats.dims()).containsExactly(1, 3);
        assertThat((float[]) rawFloats.values()).containsExactly(1f, 2f, 3f);

        TensorData typedLongs = TensorData.read(write(
                "typed.pb",
                TensorProto.newBuilder()
                        .setName("t")
                        .setDataType(7)
                        .addDims(2)
                        .addInt64Data(7)
                        .addInt64Data(-7)));
        assertThat((long[]) typedLongs.values()).containsExactly(7L, -7L);

        TensorData scalar = TensorData.read(write(
                "scalar.pb",
                TensorProto.newBuilder().setName("s").setDataType(9).setRawData(ByteString.copyFrom(new byte[] {1}))));
        assertThat((boolean[]) scalar.values()).containsExactly(true);

        TensorData empty = TensorData.read(write(
                "empty.pb",
                TensorProto.newBuilder().setName("e").setDataType(1).addDims(0).addDims(4)));
        assertThat((float[]) empty.values()).isEmpty();
    }

    private Path write(String name, TensorProto.Builder proto) throws IOException {
        return Files.write(dir.resolve(name), proto.build().toByteArray());
    }
}
