package io.flinkonnx.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Message;
import io.flinkonnx.model.proto.OnnxProto.AttributeProto;
import io.flinkonnx.model.proto.OnnxProto.FunctionProto;
import io.flinkonnx.model.proto.OnnxProto.GraphProto;
import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import io.flinkonnx.model.proto.OnnxProto.NodeProto;
import io.flinkonnx.model.proto.OnnxProto.SparseTensorProto;
import io.flinkonnx.model.proto.OnnxProto.StringStringEntryProto;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.proto.OnnxProto.TrainingInfoProto;
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
    void theRowsOfTheTableAGraphInputIndexesAreReadFromTheStructureAlone() throws Exception {
        Path gather = TestModels.writeGather(dir.resolve("gather.onnx"));
        Path cast = new OnnxGraph("cast_gather")
                .input("ids", ElementType.INT32, "batch", "seq")
                .input("x", ElementType.FLOAT, "batch", 4)
                .output("e", ElementType.FLOAT, "batch", "seq", 3)
                .output("y", ElementType.FLOAT, "batch", 4)
                .floatInitializer("embedding", new float[21], 7, 3)
                .node("Cast", new String[] {"ids"}, new String[] {"ids64"}, "to", 7L)
                .node("Gather", new String[] {"embedding", "ids64"}, new String[] {"e"}, "axis", 0L)
                .node("Relu", new String[] {"x"}, new String[] {"y"})
                .writeTo(dir.resolve("cast.onnx"));
        try (LocalModel g = ModelSource.of(gather.toString()).fetch();
                LocalModel c = ModelSource.of(cast.toString()).fetch()) {
            assertThat(g.signature().orElseThrow().lookupTableRows("idx")).contains(10L);
            assertThat(c.signature().orElseThrow().lookupTableRows("ids"))
                    .as("through a Cast")
                    .contains(7L);
            assertThat(c.signature().orElseThrow().lookupTableRows("x")).isEmpty();
            assertThat(c.signature().orElseThrow().withBatchAxis(0).lookupTableRows("ids"))
                    .contains(7L);
        }
    }

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

    @Test
    void parsingTheStructureKeepsEverythingButTheValuesOfTensorsWhereverTheyLie() throws IOException {
        ModelProto model = everyPlaceATensorLies();
        Path file = Files.write(dir.resolve("everywhere.onnx"), model.toByteArray());

        ModelProto structure = OnnxModelReader.parseStructure(file, "everywhere.onnx");

        ModelProto expected = (ModelProto) withoutTensorValues(model);
        assertThat(expected).as("the test model holds tensor values").isNotEqualTo(model);
        assertThat(structure).isEqualTo(expected);
        assertThat(OnnxModelReader.signature(structure))
                .usingRecursiveComparison()
                .isEqualTo(OnnxModelReader.signature(model));
        assertThat(OnnxModelReader.externalDataReferences(structure))
                .isEqualTo(OnnxModelReader.externalDataReferences(model))
                .containsEntry("sub/w.bin", "then_w");
    }

    @Test
    void parsingTheStructureOfAModelCutInsideItsWeightsFailsAsAFullParseDoes() throws IOException {
        Path file = new TestModels.Mlp(16, 32, 4).writeTo(dir.resolve("mlp.onnx"));
        byte[] bytes = Files.readAllBytes(file);
        Path cut = Files.write(dir.resolve("cut.onnx"), Arrays.copyOf(bytes, bytes.length / 2));
        assertThatThrownBy(() -> OnnxModelReader.parseStructure(cut, "/models/cut.onnx"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining(
                        "Model file /models/cut.onnx is not a valid ONNX model (" + bytes.length / 2 + " bytes)");
        Path empty = Files.write(dir.resolve("empty.onnx"), new byte[0]);
        assertThatThrownBy(() -> OnnxModelReader.parseStructure(empty, "empty.onnx"))
                .isInstanceOf(ModelLoadException.class)
                .hasMessageContaining("is empty (0 bytes)");
    }

    /**
     * An MLP whose graph also carries tensors in every other place ONNX allows: typed-data initializers, a
     * sparse initializer, a Constant's tensor attribute, an If's subgraph with an embedded and an external
     * initializer, a tensor-list attribute, a function's node and a training-info graph.
     */
    private static ModelProto everyPlaceATensorLies() {
        ModelProto mlp = new TestModels.Mlp(4, 8, 2).graph().build();
        TensorProto typed = TensorProto.newBuilder()
                .setName("typed")
                .setDataType(ElementType.DOUBLE.onnxCode())
                .addDims(2)
                .addDoubleData(1.5)
                .addDoubleData(2.5)
                .build();
        TensorProto strings = TensorProto.newBuilder()
                .setName("labels")
                .setDataType(ElementType.STRING.onnxCode())
                .addDims(1)
                .addStringData(ByteString.copyFromUtf8("card"))
                .build();
        TensorProto ints = TensorProto.newBuilder()
                .setName("ints")
                .setDataType(ElementType.INT32.onnxCode())
                .addDims(2)
                .addInt32Data(7)
                .addInt32Data(8)
                .build();
        TensorProto unsigned = TensorProto.newBuilder()
                .setName("unsigned")
                .setDataType(ElementType.UINT64.onnxCode())
                .addDims(1)
                .addUint64Data(9)
                .build();
        TensorProto raw = TestModels.floatTensor("then_embedded", new float[] {1, 2, 3});
        TensorProto external = TensorProto.newBuilder()
                .setName("then_w")
                .setDataType(ElementType.FLOAT.onnxCode())
                .addDims(3)
                .setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(
                        StringStringEntryProto.newBuilder().setKey("location").setValue("sub/w.bin"))
                .build();
        GraphProto thenBranch = GraphProto.newBuilder()
                .setName("then")
                .addInitializer(raw)
                .addInitializer(external)
                .addNode(NodeProto.newBuilder()
                        .setOpType("Add")
                        .addInput("then_embedded")
                        .addInput("then_w")
                        .addOutput("then_out"))
                .build();
        NodeProto constant = NodeProto.newBuilder()
                .setOpType("Constant")
                .addOutput("c")
                .addAttribute(AttributeProto.newBuilder()
                        .setName("value")
                        .setType(AttributeProto.AttributeType.TENSOR)
                        .setT(TestModels.floatTensor("c", new float[] {4, 5})))
                .build();
        NodeProto branch = NodeProto.newBuilder()
                .setOpType("If")
                .addInput("cond")
                .addOutput("out")
                .addAttribute(AttributeProto.newBuilder()
                        .setName("then_branch")
                        .setType(AttributeProto.AttributeType.GRAPH)
                        .setG(thenBranch))
                .addAttribute(AttributeProto.newBuilder()
                        .setName("some_tensors")
                        .setType(AttributeProto.AttributeType.TENSORS)
                        .addTensors(typed)
                        .addTensors(ints))
                .build();
        GraphProto graph = mlp.getGraph().toBuilder()
                .addInitializer(typed)
                .addInitializer(strings)
                .addInitializer(unsigned)
                .addSparseInitializer(SparseTensorProto.newBuilder()
                        .setValues(TestModels.floatTensor("sparse", new float[] {6}))
                        .setIndices(TensorProto.newBuilder()
                                .setName("sparse_idx")
                                .setDataType(ElementType.INT64.onnxCode())
                                .addInt64Data(0))
                        .addDims(4))
                .addNode(constant)
                .addNode(branch)
                .build();
        return mlp.toBuilder()
                .setGraph(graph)
                .addMetadataProps(
                        StringStringEntryProto.newBuilder().setKey("owner").setValue("fraud-team"))
                .addFunctions(FunctionProto.newBuilder()
                        .setName("f")
                        .setDomain("custom")
                        .addNode(constant))
                .addTrainingInfo(TrainingInfoProto.newBuilder()
                        .setInitialization(
                                GraphProto.newBuilder().setName("init").addInitializer(raw)))
                .build();
    }

    /** {@code message} with the value fields of every TensorProto in it cleared, through the full parse's API. */
    private static Message withoutTensorValues(Message message) {
        Message.Builder b = message.toBuilder();
        if (message instanceof TensorProto) {
            return ((TensorProto) message)
                    .toBuilder()
                            .clearFloatData()
                            .clearInt32Data()
                            .clearStringData()
                            .clearInt64Data()
                            .clearRawData()
                            .clearDoubleData()
                            .clearUint64Data()
                            .build();
        }
        for (Map.Entry<Descriptors.FieldDescriptor, Object> e :
                message.getAllFields().entrySet()) {
            Descriptors.FieldDescriptor f = e.getKey();
            if (f.getJavaType() != Descriptors.FieldDescriptor.JavaType.MESSAGE) {
                continue;
            }
            if (f.isRepeated()) {
                b.clearField(f);
                for (Object item : (List<?>) e.getValue()) {
                    b.addRepeatedField(f, withoutTensorValues((Message) item));
                }
            } else {
                b.setField(f, withoutTensorValues((Message) e.getValue()));
            }
        }
        return b.build();
    }
}
