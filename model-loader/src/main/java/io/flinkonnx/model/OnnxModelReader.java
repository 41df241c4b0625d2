package io.flinkonnx.model;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Descriptors;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.WireFormat;
import io.flinkonnx.model.proto.OnnxProto;
import io.flinkonnx.model.proto.OnnxProto.AttributeProto;
import io.flinkonnx.model.proto.OnnxProto.GraphProto;
import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import io.flinkonnx.model.proto.OnnxProto.NodeProto;
import io.flinkonnx.model.proto.OnnxProto.OperatorSetIdProto;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.proto.OnnxProto.TensorShapeProto;
import io.flinkonnx.model.proto.OnnxProto.TypeProto;
import io.flinkonnx.model.proto.OnnxProto.ValueInfoProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Reads and checks an ONNX {@code ModelProto} with protobuf-java, before ONNX Runtime sees it.
 *
 * <p>Every failure is a {@link ModelLoadException} whose message names the file and the cause, never only
 * a raw protobuf trace.
 */
@PublicEvolving
public final class OnnxModelReader {
    private OnnxModelReader() {}

    /** Parses an ONNX model; fails with the file name when it is empty, truncated or not ONNX. */
    public static ModelProto parse(byte[] bytes, String file) {
        if (bytes.length == 0) {
            throw new ModelLoadException("Model file " + file + " is empty (0 bytes): it is not an ONNX model.");
        }
        ModelProto model;
        try {
            model = ModelProto.parseFrom(bytes);
        } catch (InvalidProtocolBufferException e) {
            throw notParsable(file, bytes.length, e);
        }
        return checked(model, file, bytes.length);
    }

    /**
     * Parses the ONNX model in {@code path}, streaming it rather than holding its bytes and the parsed
     * message at once; fails naming {@code file} when it is empty, truncated, not ONNX or unreadable.
     */
    public static ModelProto parse(Path path, String file) {
        long size;
        ModelProto model;
        try {
            size = Files.size(path);
            if (size == 0) {
                throw new ModelLoadException("Model file " + file + " is empty (0 bytes): it is not an ONNX model.");
            }
            try (InputStream in = Files.newInputStream(path)) {
                CodedInputStream coded = CodedInputStream.newInstance(in, 64 * 1024);
                coded.setSizeLimit(Integer.MAX_VALUE);
                model = ModelProto.parseFrom(coded);
            } catch (InvalidProtocolBufferException e) {
                throw notParsable(file, size, e);
            }
        } catch (IOException e) {
            throw new ModelLoadException("Model file " + file + " cannot be read: " + e, e);
        }
        return checked(model, file, size);
    }

    /**
     * Parses the structure of the ONNX model in {@code path}, everything but the values of its tensors:
     * graphs, nodes, signature, opsets, metadata and each tensor's name, type, dims and external-data
     * references. Tensor values (raw and typed data of initializers, of tensor attributes such as
     * {@code Constant}'s, in subgraphs, functions and training info) are skipped as they stream past, so the
     * memory this takes is the graph's, not the weights': a model with 1.9 GB of embedded weights is not held
     * in the heap. Fails as {@link #parse(Path, String)} does.
     */
    static ModelProto parseStructure(Path path, String file) {
        long size;
        ModelProto.Builder model = ModelProto.newBuilder();
        try {
            size = Files.size(path);
            if (size == 0) {
                throw new ModelLoadException("Model file " + file + " is empty (0 bytes): it is not an ONNX model.");
            }
            try (InputStream in = Files.newInputStream(path)) {
                CodedInputStream coded = CodedInputStream.newInstance(in, 64 * 1024);
                coded.setSizeLimit(Integer.MAX_VALUE);
                mergeStructure(coded, model, 0);
            } catch (InvalidProtocolBufferException e) {
                throw notParsable(file, size, e);
            }
        } catch (IOException e) {
            throw new ModelLoadException("Model file " + file + " cannot be read: " + e, e);
        }
        return checked(model.buildPartial(), file, size);
    }

    /** TensorProto's value fields: float, int32, string, int64, raw, double and uint64 data. */
    private static final Set<Integer> TENSOR_VALUES = Set.of(
            TensorProto.FLOAT_DATA_FIELD_NUMBER,
            TensorProto.INT32_DATA_FIELD_NUMBER,
            TensorProto.STRING_DATA_FIELD_NUMBER,
            TensorProto.INT64_DATA_FIELD_NUMBER,
            TensorProto.RAW_DATA_FIELD_NUMBER,
            TensorProto.DOUBLE_DATA_FIELD_NUMBER,
            TensorProto.UINT64_DATA_FIELD_NUMBER);

    /** The message types that hold a TensorProto, directly or below (graphs, nodes, attributes, ...). */
    private static final Set<Descriptors.Descriptor> HOLDING_TENSORS = holdingTensors();

    /** protobuf-java's own limit on nested messages. */
    private static final int MAX_DEPTH = 100;

    private static Set<Descriptors.Descriptor> holdingTensors() {
        Set<Descriptors.Descriptor> all = new HashSet<>();
        List<Descriptors.Descriptor> todo = new ArrayList<>(List.of(ModelProto.getDescriptor()));
        while (!todo.isEmpty()) {
            Descriptors.Descriptor d = todo.remove(todo.size() - 1);
            if (all.add(d)) {
                d.getFields().stream()
                        .filter(f -> f.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE)
                        .forEach(f -> todo.add(f.getMessageType()));
            }
        }
        Set<Descriptors.Descriptor> holding = new HashSet<>(Set.of(TensorProto.getDescriptor()));
        for (boolean grew = true; grew; ) {
            grew = false;
            for (Descriptors.Descriptor d : all) {
                if (!holding.contains(d)
                        && d.getFields().stream()
                                .anyMatch(f -> f.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE
                                        && holding.contains(f.getMessageType()))) {
                    grew |= holding.add(d);
                }
            }
        }
        return Set.copyOf(holding);
    }

    /**
     * Merges the message {@code in} holds (up to its limit, or its end) into {@code builder}: fields that may
     * hold tensors are parsed field by field, a tensor's values are skipped unread, and every other field is
     * copied as it is and merged at the end.
     */
    private static void mergeStructure(CodedInputStream in, Message.Builder builder, int depth) throws IOException {
        if (depth > MAX_DEPTH) {
            throw new InvalidProtocolBufferException(
                    "Protocol message had too many levels of nesting (more than " + MAX_DEPTH + ")");
        }
        Descriptors.Descriptor type = builder.getDescriptorForType();
        boolean tensor = type.equals(TensorProto.getDescriptor());
        ByteString.Output plain = ByteString.newOutput();
        CodedOutputStream copy = CodedOutputStream.newInstance(plain);
        for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
            int number = WireFormat.getTagFieldNumber(tag);
            Descriptors.FieldDescriptor field = type.findFieldByNumber(number);
            if (tensor && TENSOR_VALUES.contains(number)) {
                if (!in.skipField(tag)) {
                    break;
                }
            } else if (field != null
                    && WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED
                    && field.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE
                    && HOLDING_TENSORS.contains(field.getMessageType())) {
                Message.Builder child = builder.newBuilderForField(field);
                if (!field.isRepeated() && builder.hasField(field)) {
                    child.mergeFrom((Message) builder.getField(field)); // a repeated singular field merges
                }
                int limit = in.pushLimit(in.readRawVarint32());
                mergeStructure(in, child, depth + 1);
                in.checkLastTagWas(0);
                in.popLimit(limit);
                if (field.isRepeated()) {
                    builder.addRepeatedField(field, child.buildPartial());
                } else {
                    builder.setField(field, child.buildPartial());
                }
            } else if (!in.skipField(tag, copy)) {
                break;
            }
        }
        copy.flush();
        builder.mergeFrom(plain.toByteString());
    }

    private static ModelLoadException notParsable(String file, long size, InvalidProtocolBufferException e) {
        return new ModelLoadException("Model file " + file + " is not a valid ONNX model (" + size
                + " bytes): the protobuf could not be parsed (" + firstLine(e.getMessage())
                + "). Is the file truncated, or not an .onnx/.ort file?");
    }

    private static ModelProto checked(ModelProto model, String file, long size) {
        if (!model.hasGraph() || model.getIrVersion() <= 0) {
            throw new ModelLoadException("Model file " + file + " is not a valid ONNX model (" + size
                    + " bytes): it has " + (model.hasGraph() ? "no ir_version" : "no graph")
                    + ". Is the file truncated, or not an .onnx/.ort file?");
        }
        return model;
    }

    /** The signature with the default batch-axis rule (a symbolic or unknown first dimension). */
    public static ModelSignature signature(ModelProto model) {
        GraphProto graph = model.getGraph();
        Set<String> initializers = new HashSet<>();
        graph.getInitializerList().forEach(t -> initializers.add(t.getName()));
        graph.getSparseInitializerList()
                .forEach(t -> initializers.add(t.getValues().getName()));
        List<TensorSpec> inputs = new ArrayList<>();
        for (ValueInfoProto vi : graph.getInputList()) {
            // IR < 4 lists initializers among the inputs; they are not something a caller feeds.
            if (!initializers.contains(vi.getName())) {
                inputs.add(toSpec(vi));
            }
        }
        List<TensorSpec> outputs = new ArrayList<>();
        graph.getOutputList().forEach(vi -> outputs.add(toSpec(vi)));
        return new ModelSignature(
                        ModelFormat.ONNX,
                        model.getIrVersion(),
                        opsetImports(model),
                        model.getProducerName(),
                        model.getProducerVersion(),
                        inputs,
                        outputs)
                .withLookupTableRows(lookupTableRows(graph, inputs));
    }

    /**
     * Per graph input: the first dim of the initializer a {@code Gather} (axis 0) reads with that input as its
     * indices, directly or through a {@code Cast} (an embedding table indexed by {@code input_ids}). Read from the
     * initializers' dims alone, so it works on a structure-only parse.
     */
    private static Map<String, Long> lookupTableRows(GraphProto graph, List<TensorSpec> inputs) {
        Map<String, TensorProto> initializers = new HashMap<>();
        graph.getInitializerList().forEach(t -> initializers.put(t.getName(), t));
        Map<String, String> castOf = new HashMap<>(); // a Cast's output -> the graph input it casts
        Set<String> inputNames = new HashSet<>();
        inputs.forEach(i -> inputNames.add(i.name()));
        for (NodeProto node : graph.getNodeList()) {
            if (node.getOpType().equals("Cast")
                    && node.getInputCount() == 1
                    && inputNames.contains(node.getInput(0))
                    && node.getOutputCount() == 1) {
                castOf.put(node.getOutput(0), node.getInput(0));
            }
        }
        Map<String, Long> rows = new LinkedHashMap<>();
        for (NodeProto node : graph.getNodeList()) {
            if (!node.getOpType().equals("Gather") || !node.getDomain().isEmpty() || node.getInputCount() < 2) {
                continue;
            }
            long axis = node.getAttributeList().stream()
                    .filter(a -> a.getName().equals("axis"))
                    .mapToLong(AttributeProto::getI)
                    .findFirst()
                    .orElse(0L);
            TensorProto table = initializers.get(node.getInput(0));
            String indices = node.getInput(1);
            String input = inputNames.contains(indices) ? indices : castOf.get(indices);
            if (axis == 0 && table != null && table.getDimsCount() > 0 && input != null) {
                rows.merge(input, table.getDims(0), Math::min);
            }
        }
        return rows;
    }

    /** Opset per domain, {@code ""} standing for the default domain (also written {@code ai.onnx}). */
    public static Map<String, Long> opsetImports(ModelProto model) {
        Map<String, Long> opsets = new LinkedHashMap<>();
        for (OperatorSetIdProto op : model.getOpsetImportList()) {
            opsets.put(RuntimeLimits.normalizeDomain(op.getDomain()), op.getVersion());
        }
        return opsets;
    }

    /**
     * Fails when the model needs a newer runtime than {@code limits} describes, naming the file, what the
     * model has, what the runtime reads, and the fix.
     */
    public static void checkRuntimeLimits(ModelProto model, RuntimeLimits limits, String file) {
        if (model.getIrVersion() > limits.maxIrVersion()) {
            throw new ModelLoadException("Model file " + file + " has IR version " + model.getIrVersion() + ", but "
                    + limits.runtimeName() + " reads IR versions up to " + limits.maxIrVersion()
                    + ". Re-export it with an exporter/onnx version that writes IR <= " + limits.maxIrVersion()
                    + " (or downgrade it with onnx.version_converter), or upgrade ONNX Runtime.");
        }
        for (Map.Entry<String, Long> e : opsetImports(model).entrySet()) {
            long max = limits.maxOpset(e.getKey());
            if (max >= 0 && e.getValue() > max) {
                String domain = e.getKey().isEmpty() ? "ai.onnx" : e.getKey();
                throw new ModelLoadException("Model file " + file + " uses opset " + e.getValue() + " of domain '"
                        + domain + "', but " + limits.runtimeName() + " supports that domain up to opset " + max
                        + ". Re-export it with opset_version=" + max
                        + " (e.g. torch.onnx.export(..., opset_version=" + max + ")), or upgrade ONNX Runtime.");
            }
        }
    }

    /** The distinct external-data locations the model's tensors refer to, in first-use order. */
    public static List<String> externalDataLocations(ModelProto model) {
        return new ArrayList<>(externalDataReferences(model).keySet());
    }

    /**
     * The distinct external-data locations the model's tensors refer to, in first-use order, each with the
     * name of the first tensor that refers to it (for messages that name the tensor).
     */
    public static Map<String, String> externalDataReferences(ModelProto model) {
        Map<String, String> references = new LinkedHashMap<>();
        collectExternal(model.getGraph(), references);
        for (OnnxProto.FunctionProto f : model.getFunctionsList()) {
            for (NodeProto n : f.getNodeList()) {
                collectExternal(n, references);
            }
        }
        return references;
    }

    /**
     * Checks an external-data location by its text: it must be a relative path with no {@code ..} segment
     * (with {@code /} or {@code \} as separator) that names something below the model's folder. A
     * {@code ..} is refused even where the text normalizes to a path inside the folder: after a symbolic
     * link ({@code sub/../w.bin} with {@code sub} a link) the operating system, and ONNX Runtime before
     * 1.24, would leave the folder.
     *
     * @param tensor the tensor that refers to it, named in the message; may be null
     * @param file the model file (or URI) named in the message
     * @return the location as a relative path
     * @throws ModelLoadException naming the model file, the tensor and the location
     */
    public static Path checkExternalDataLocation(String location, String tensor, String file) {
        Path relative;
        try {
            relative = Path.of(location);
        } catch (RuntimeException e) {
            throw new ModelLoadException("Model file " + file + " refers to external data at an invalid location '"
                    + location + "'" + forTensor(tensor) + ": " + e.getMessage());
        }
        if (location.isEmpty()) {
            throw new ModelLoadException("Model file " + file + " refers to external data with an empty location"
                    + forTensor(tensor) + ": refused. " + CONFINEMENT);
        }
        boolean dotDot = false;
        for (String segment : location.split("[/\\\\]", -1)) {
            dotDot |= segment.equals("..");
        }
        Path normalized = relative.normalize();
        if (relative.isAbsolute()
                || relative.getRoot() != null
                || location.startsWith("/")
                || location.startsWith("\\")
                || (location.length() > 1 && location.charAt(1) == ':' && Character.isLetter(location.charAt(0)))
                || normalized.startsWith("..")
                || normalized.toString().isEmpty()) {
            throw new ModelLoadException("Model file " + file + " refers to external data '" + location
                    + "' outside the model's folder" + forTensor(tensor) + ": refused. " + CONFINEMENT);
        }
        if (dotDot) {
            throw new ModelLoadException("Model file " + file + " refers to external data '" + location + "'"
                    + forTensor(tensor) + ", a location with a '..' segment: refused. After a symbolic link, '..'"
                    + " leads outside the model's folder whatever the text says. " + CONFINEMENT);
        }
        return relative;
    }

    private static final String CONFINEMENT = "External data must lie in the model's folder or below it, named by a"
            + " relative path without '..' segments.";

    /**
     * Resolves an external-data location against the model's folder, refusing any location that is
     * absolute, has a {@code ..} segment, or leads out of that folder by a symbolic link, whatever the
     * runtime version would do. Same as {@link #resolveExternalData(Path, String, String, String)} without
     * naming the tensor.
     */
    public static Path resolveExternalData(Path modelDir, String location, String file) {
        return resolveExternalData(modelDir, location, null, file);
    }

    /**
     * Resolves an external-data location against the model's folder, refusing any location that is
     * absolute, has a {@code ..} segment ({@link #checkExternalDataLocation}), or leads out of that folder
     * by a symbolic link (checked when the path exists), whatever the runtime version would do.
     *
     * @param tensor the tensor that refers to the location, named in messages; may be null
     * @param file the model file (or URI) named in messages
     * @throws ModelLoadException naming the model file, the tensor and the location
     */
    public static Path resolveExternalData(Path modelDir, String location, String tensor, String file) {
        Path relative = checkExternalDataLocation(location, tensor, file);
        Path dir = modelDir.toAbsolutePath().normalize();
        Path resolved = dir.resolve(relative).normalize();
        if (!resolved.startsWith(dir) || resolved.equals(dir)) {
            throw new ModelLoadException("Model file " + file + " refers to external data '" + location
                    + "' outside the model's folder " + dir + forTensor(tensor) + ": refused. " + CONFINEMENT);
        }
        if (Files.exists(resolved, LinkOption.NOFOLLOW_LINKS)) {
            try {
                Path real = resolved.toRealPath();
                if (!real.startsWith(dir.toRealPath())) {
                    throw new ModelLoadException("Model file " + file + " refers to external data '" + location + "'"
                            + forTensor(tensor) + ", a link to " + real + " outside the model's folder " + dir
                            + ": refused. " + CONFINEMENT);
                }
            } catch (IOException e) {
                throw new ModelLoadException(
                        "Model file " + file + ": cannot resolve external data '" + location + "'" + forTensor(tensor)
                                + ": " + e.getMessage(),
                        e);
            }
        }
        return resolved;
    }

    private static String forTensor(String tensor) {
        return tensor == null ? "" : " (tensor '" + tensor + "')";
    }

    private static void collectExternal(GraphProto graph, Map<String, String> out) {
        graph.getInitializerList().forEach(t -> collectExternal(t, out));
        graph.getSparseInitializerList().forEach(s -> {
            collectExternal(s.getValues(), out);
            collectExternal(s.getIndices(), out);
        });
        for (NodeProto n : graph.getNodeList()) {
            collectExternal(n, out);
        }
    }

    private static void collectExternal(NodeProto node, Map<String, String> out) {
        for (AttributeProto a : node.getAttributeList()) {
            if (a.hasT()) {
                collectExternal(a.getT(), out);
            }
            a.getTensorsList().forEach(t -> collectExternal(t, out));
            if (a.hasG()) {
                collectExternal(a.getG(), out);
            }
            a.getGraphsList().forEach(g -> collectExternal(g, out));
        }
    }

    private static void collectExternal(TensorProto t, Map<String, String> out) {
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            t.getExternalDataList().stream()
                    .filter(e -> e.getKey().equals("location"))
                    .forEach(e -> out.putIfAbsent(e.getValue(), t.getName()));
        }
    }

    private static TensorSpec toSpec(ValueInfoProto vi) {
        TypeProto type = vi.getType();
        switch (type.getValueCase()) {
            case TENSOR_TYPE: {
                TypeProto.Tensor t = type.getTensorType();
                List<Dim> dims = t.hasShape() ? dims(t.getShape()) : List.of();
                return new TensorSpec(
                        vi.getName(),
                        TensorSpec.Kind.TENSOR,
                        ElementType.fromOnnxCode(t.getElemType()),
                        dims,
                        t.hasShape(),
                        TensorSpec.defaultBatchAxis(dims));
            }
            case SPARSE_TENSOR_TYPE: {
                TypeProto.SparseTensor t = type.getSparseTensorType();
                List<Dim> dims = t.hasShape() ? dims(t.getShape()) : List.of();
                return new TensorSpec(
                        vi.getName(),
                        TensorSpec.Kind.SPARSE_TENSOR,
                        ElementType.fromOnnxCode(t.getElemType()),
                        dims,
                        t.hasShape(),
                        TensorSpec.NO_BATCH_AXIS);
            }
            case SEQUENCE_TYPE:
                return container(
                        vi.getName(),
                        TensorSpec.Kind.SEQUENCE,
                        type.getSequenceType().getElemType());
            case MAP_TYPE:
                return new TensorSpec(
                        vi.getName(),
                        TensorSpec.Kind.MAP,
                        ElementType.fromOnnxCode(type.getMapType().getKeyType()),
                        List.of(),
                        false,
                        TensorSpec.NO_BATCH_AXIS);
            case OPTIONAL_TYPE:
                return container(
                        vi.getName(),
                        TensorSpec.Kind.OPTIONAL,
                        type.getOptionalType().getElemType());
            default:
                return new TensorSpec(
                        vi.getName(),
                        TensorSpec.Kind.UNKNOWN,
                        ElementType.UNDEFINED,
                        List.of(),
                        false,
                        TensorSpec.NO_BATCH_AXIS);
        }
    }

    private static TensorSpec container(String name, TensorSpec.Kind kind, TypeProto elem) {
        ElementType et = elem.hasTensorType()
                ? ElementType.fromOnnxCode(elem.getTensorType().getElemType())
                : ElementType.UNDEFINED;
        return new TensorSpec(name, kind, et, List.of(), false, TensorSpec.NO_BATCH_AXIS);
    }

    private static List<Dim> dims(TensorShapeProto shape) {
        List<Dim> dims = new ArrayList<>(shape.getDimCount());
        for (TensorShapeProto.Dimension d : shape.getDimList()) {
            if (d.hasDimValue()) {
                dims.add(Dim.fixed(d.getDimValue()));
            } else if (d.hasDimParam()) {
                dims.add(Dim.symbolic(d.getDimParam()));
            } else {
                dims.add(Dim.unknown());
            }
        }
        return dims;
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "no detail";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
