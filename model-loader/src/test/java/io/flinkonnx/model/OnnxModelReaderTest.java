package io.flinkonnx.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OnnxModelReaderTest {
    private static final RuntimeLimits ORT_LIKE =
            new RuntimeLimits("ONNX Runtime 9.9", 11, Map.of("", 23L, "ai.onnx.ml", 5L));

    @TempDir
    Path dir;

    @Test
    void readsInputsOutputsTypesShapesAndBatchAxisOfAnMlp() throws IOException {
        Path file = new TestModels.Mlp(8, 16, 3).writeTo(dir.resolve("mlp.onnx"));
        ModelSignature sig = OnnxModelReader.signature(OnnxModelReader.parse(Files.readAllBytes(file), "mlp.onnx"));

        assertThat(sig.format()).isEqualTo(ModelFormat.ONNX);
        assertThat(sig.irVersion()).isEqualTo(8);
        assertThat(sig.opsetImports()).containsEntry("", 17L);
        assertThat(sig.producerName()).isEqualTo("flink-onnx-tests");
        // Initializers (w1, b1, ...) are not inputs a caller feeds.
        assertThat(sig.inputs()).extracting(TensorSpec::name).containsExactly("x");
        TensorSpec x = sig.inputs().get(0);
        assertThat(x.elementType()).isEqualTo(ElementType.FLOAT);
        assertThat(x.dims()).containsExactly(Dim.symbolic("batch"), Dim.fixed(8));
        assertThat(x.batchAxis()).isZero();
        assertThat(x.recordDims()).containsExactly(Dim.fixed(8));
        assertThat(sig.outputs()).extracting(TensorSpec::toString).containsExactly("y:FLOAT[batch,3]");
    }

    @Test
    void excludesInitializersListedAsGraphInputs() {
        // IR < 4 exporters list every initializer among the inputs too.
        ModelProto model = new TestModels.Mlp(2, 2, 1).graph().build();
        ModelProto old = model.toBuilder()
                .setGraph(model.getGraph().toBuilder()
                        .addInput(model.getGraph().getInput(0).toBuilder().setName("w1")))
                .build();
        assertThat(OnnxModelReader.signature(old).inputs())
                .extracting(TensorSpec::name)
                .containsExactly("x");
    }

    @Test
    void aFixedFirstDimensionIsNoBatchAxisUnlessConfigured() throws IOException {
        Path file = new OnnxGraph("fixed")
                .input("x", ElementType.FLOAT, 1, 4)
                .output("y", ElementType.FLOAT, 1, 4)
                .node("Identity", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve("fixed.onnx"));
        ModelSignature sig = OnnxModelReader.signature(OnnxModelReader.parse(Files.readAllBytes(file), "fixed.onnx"));
        assertThat(sig.inputs().get(0).hasBatchAxis()).isFalse();

        ModelSignature configured = sig.withBatchAxis(0);
        assertThat(configured.inputs().get(0).batchAxis()).isZero();
        assertThat(configured.outputs().get(0).batchAxis()).isZero();
    }

    @Test
    void unknownDimensionsAreReportedAsUnknown() throws IOException {
        Path file = new OnnxGraph("unk")
                .input("x", ElementType.INT64, null, "seq")
                .output("y", ElementType.INT64, null, "seq")
                .node("Identity", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve("unk.onnx"));
        TensorSpec x = OnnxModelReader.signature(OnnxModelReader.parse(Files.readAllBytes(file), "unk"))
                .inputs()
                .get(0);
        assertThat(x.dims()).containsExactly(Dim.unknown(), Dim.symbolic("seq"));
        assertThat(x.batchAxis()).isZero();
        assertThat(x.shapeString()).isEqualTo("[?,seq]");
    }

    @Test
    void emptyFileFailsNamingTheFile() {
        assertThatThrownBy(() -> OnnxModelReader.parse(new byte[0], "/models/empty.onnx"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("/models/empty.onnx")
                .hasMessageContaining("empty (0 bytes)");
    }

    @Test
    void truncatedFileFailsNamingTheFileAndTheCause() throws IOException {
        byte[] full = Files.readAllBytes(new TestModels.Mlp(16, 32, 4).writeTo(dir.resolve("m.onnx")));
        byte[] cut = Arrays.copyOf(full, full.length / 2);
        assertThatThrownBy(() -> OnnxModelReader.parse(cut, "/models/cut.onnx"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageStartingWith(
                        "Model file /models/cut.onnx is not a valid ONNX model (" + cut.length + " bytes)")
                .hasMessageContaining("truncated")
                .hasMessageNotContaining("\n\tat ");
    }

    @Test
    void nonOnnxFileFailsNamingTheFile() {
        byte[] text = "name,amount\nalice,12\n".getBytes(StandardCharsets.UTF_8);
        assertThatThrownBy(() -> OnnxModelReader.parse(text, "data.csv"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file data.csv is not a valid ONNX model");
    }

    @Test
    void opsetNewerThanTheRuntimeFailsWithTheFixToApply() throws IOException {
        Path file = TestModels.writeIdentityWithOpset(dir.resolve("new.onnx"), 30);
        ModelProto model = OnnxModelReader.parse(Files.readAllBytes(file), "new.onnx");
        assertThatThrownBy(() -> OnnxModelReader.checkRuntimeLimits(model, ORT_LIKE, "/m/new.onnx"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessage("Model file /m/new.onnx uses opset 30 of domain 'ai.onnx', but ONNX Runtime 9.9 supports"
                        + " that domain up to opset 23. Re-export it with opset_version=23 (e.g."
                        + " torch.onnx.export(..., opset_version=23)), or upgrade ONNX Runtime.");
    }

    @Test
    void mlDomainOpsetIsCheckedToo() {
        ModelProto model = new OnnxGraph("ml")
                .opset("ai.onnx.ml", 9)
                .input("x", ElementType.FLOAT, "b", 1)
                .output("x", ElementType.FLOAT, "b", 1)
                .build();
        assertThatThrownBy(() -> OnnxModelReader.checkRuntimeLimits(model, ORT_LIKE, "ml.onnx"))
                .hasMessageContaining("opset 9 of domain 'ai.onnx.ml'")
                .hasMessageContaining("up to opset 5");
    }

    @Test
    void irVersionNewerThanTheRuntimeFails() throws IOException {
        Path file = TestModels.writeIdentityWithIrVersion(dir.resolve("ir.onnx"), 99);
        ModelProto model = OnnxModelReader.parse(Files.readAllBytes(file), "ir.onnx");
        assertThatThrownBy(() -> OnnxModelReader.checkRuntimeLimits(model, ORT_LIKE, "/m/ir.onnx"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("Model file /m/ir.onnx has IR version 99")
                .hasMessageContaining("ONNX Runtime 9.9 reads IR versions up to 11")
                .hasMessageContaining("upgrade ONNX Runtime");
    }

    @Test
    void modelsWithinTheLimitsPass() throws IOException {
        Path file = TestModels.writeIdentityWithOpset(dir.resolve("ok.onnx"), 23);
        OnnxModelReader.checkRuntimeLimits(OnnxModelReader.parse(Files.readAllBytes(file), "ok"), ORT_LIKE, "ok");
    }

    @Test
    void listsExternalDataLocations() throws IOException {
        Path file = new TestModels.Mlp(4, 4, 2).writeWithExternalWeights(dir.resolve("ext.onnx"), "weights/w1.bin");
        ModelProto model = OnnxModelReader.parse(Files.readAllBytes(file), "ext.onnx");
        assertThat(OnnxModelReader.externalDataLocations(model)).containsExactly("weights/w1.bin");
        assertThat(OnnxModelReader.resolveExternalData(dir, "weights/w1.bin", "ext.onnx"))
                .isEqualTo(dir.resolve("weights/w1.bin").toAbsolutePath().normalize());
    }

    @Test
    void externalDataEscapingTheModelFolderIsRefused() {
        for (String location : List.of("../secret.bin", "a/../../secret.bin", "/etc/passwd")) {
            assertThatThrownBy(() -> OnnxModelReader.resolveExternalData(dir, location, "/m/evil.onnx"))
                    .as(location)
                    .isInstanceOf(ModelLoadException.class)
                    .hasMessageContaining("Model file /m/evil.onnx refers to external data '" + location + "'")
                    .hasMessageContaining("outside the model's folder");
        }
    }

    @Test
    void externalDataLinkingOutOfTheModelFolderIsRefused() throws IOException {
        Path outside = Files.createTempFile("outside", ".bin");
        try {
            Path modelDir = Files.createDirectories(dir.resolve("model"));
            Files.createSymbolicLink(modelDir.resolve("w.bin"), outside);
            assertThatThrownBy(() -> OnnxModelReader.resolveExternalData(modelDir, "w.bin", "m.onnx"))
                    .isInstanceOf(ModelLoadException.class)
                    .hasMessageContaining("a link to")
                    .hasMessageContaining("outside the model's folder");
        } finally {
            Files.deleteIfExists(outside);
        }
    }

    @Test
    void anyDotDotSegmentInAnExternalDataLocationIsRefusedEvenWhereItStaysInside() throws IOException {
        Files.createDirectories(dir.resolve("sub"));
        Files.write(dir.resolve("w.bin"), new byte[16]);
        for (String location : List.of("sub/../w.bin", "sub/./../w.bin", "a/b/../../w.bin", "sub\\..\\w.bin")) {
            assertThatThrownBy(() -> OnnxModelReader.resolveExternalData(dir, location, "w1", "/m/dots.onnx"))
                    .as(location)
                    .isInstanceOf(ModelLoadException.class)
                    .hasMessageContaining("Model file /m/dots.onnx refers to external data '" + location + "'")
                    .hasMessageContaining("tensor 'w1'")
                    .hasMessageContaining("'..' segment");
        }
    }

    @Test
    void externalDataReferencesNameTheFirstTensorUsingEachLocation() throws IOException {
        Path file = new TestModels.Mlp(4, 4, 2).writeWithExternalWeights(dir.resolve("ext.onnx"), "weights/w1.bin");
        ModelProto model = OnnxModelReader.parse(Files.readAllBytes(file), "ext.onnx");
        assertThat(OnnxModelReader.externalDataReferences(model)).containsExactly(Map.entry("weights/w1.bin", "w1"));
    }
}
