package io.flinkonnx.model.testing;

import com.google.protobuf.ByteString;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.proto.OnnxProto.AttributeProto;
import io.flinkonnx.model.proto.OnnxProto.GraphProto;
import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import io.flinkonnx.model.proto.OnnxProto.NodeProto;
import io.flinkonnx.model.proto.OnnxProto.OperatorSetIdProto;
import io.flinkonnx.model.proto.OnnxProto.StringStringEntryProto;
import io.flinkonnx.model.proto.OnnxProto.TensorProto;
import io.flinkonnx.model.proto.OnnxProto.TensorShapeProto;
import io.flinkonnx.model.proto.OnnxProto.TypeProto;
import io.flinkonnx.model.proto.OnnxProto.ValueInfoProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A small fluent writer of ONNX graphs on the protobuf classes, so that test models are made by code.
 *
 * <p>Shapes are given as objects: an {@code Integer}/{@code Long} is a fixed dim, a {@code String} a
 * symbolic one, {@code null} an unknown one.
 */
public final class OnnxGraph {
    private final GraphProto.Builder graph = GraphProto.newBuilder();
    private final Map<String, Long> opsets = new LinkedHashMap<>();
    private long irVersion = 8;
    private int nodeCounter;

    public OnnxGraph(String name) {
        graph.setName(name);
        opsets.put("", 17L);
    }

    public OnnxGraph irVersion(long ir) {
        this.irVersion = ir;
        return this;
    }

    public OnnxGraph opset(String domain, long version) {
        opsets.put(domain, version);
        return this;
    }

    public OnnxGraph input(String name, ElementType type, Object... dims) {
        graph.addInput(valueInfo(name, type, dims));
        return this;
    }

    public OnnxGraph output(String name, ElementType type, Object... dims) {
        graph.addOutput(valueInfo(name, type, dims));
        return this;
    }

    public OnnxGraph floatInitializer(String name, float[] values, long... dims) {
        ByteBuffer buf = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buf.putFloat(v);
        }
        graph.addInitializer(tensor(name, ElementType.FLOAT, dims).setRawData(ByteString.copyFrom(buf.array())));
        return this;
    }

    public OnnxGraph longInitializer(String name, long[] values, long... dims) {
        TensorProto.Builder t = tensor(name, ElementType.INT64, dims);
        for (long v : values) {
            t.addInt64Data(v);
        }
        graph.addInitializer(t);
        return this;
    }

    /** A STRING initializer (UTF-8), e.g. the pattern of a string op. */
    public OnnxGraph stringInitializer(String name, String[] values, long... dims) {
        TensorProto.Builder t = tensor(name, ElementType.STRING, dims);
        for (String v : values) {
            t.addStringData(ByteString.copyFromUtf8(v));
        }
        graph.addInitializer(t);
        return this;
    }

    /**
     * A float initializer whose bytes live in {@code dir/location} (ONNX external data), written here
     * unless {@code location} points elsewhere (used to build models whose external data escapes).
     */
    public OnnxGraph externalFloatInitializer(String name, float[] values, Path dir, String location, long... dims)
            throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buf.putFloat(v);
        }
        Path target = dir.resolve(location).normalize();
        Files.createDirectories(target.getParent());
        Files.write(target, buf.array());
        graph.addInitializer(tensor(name, ElementType.FLOAT, dims)
                .setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(
                        StringStringEntryProto.newBuilder().setKey("location").setValue(location))
                .addExternalData(
                        StringStringEntryProto.newBuilder().setKey("offset").setValue("0"))
                .addExternalData(StringStringEntryProto.newBuilder()
                        .setKey("length")
                        .setValue(Integer.toString(values.length * 4))));
        return this;
    }

    /** Adds a node; attributes as name/value pairs (Long, Float, String, long[], float[], String[]). */
    public OnnxGraph node(String opType, String[] inputs, String[] outputs, Object... attributes) {
        return domainNode("", opType, inputs, outputs, attributes);
    }

    public OnnxGraph domainNode(String domain, String opType, String[] inputs, String[] outputs, Object... attributes) {
        NodeProto.Builder n = NodeProto.newBuilder()
                .setOpType(opType)
                .setDomain(domain)
                .setName(opType.toLowerCase() + "_" + (nodeCounter++));
        for (String i : inputs) {
            n.addInput(i);
        }
        for (String o : outputs) {
            n.addOutput(o);
        }
        for (int i = 0; i < attributes.length; i += 2) {
            n.addAttribute(attribute((String) attributes[i], attributes[i + 1]));
        }
        graph.addNode(n);
        return this;
    }

    public ModelProto build() {
        ModelProto.Builder m = ModelProto.newBuilder()
                .setIrVersion(irVersion)
                .setProducerName("flink-onnx-tests")
                .setProducerVersion("1")
                .setGraph(graph);
        opsets.forEach((d, v) ->
                m.addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(d).setVersion(v)));
        return m.build();
    }

    public Path writeTo(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, build().toByteArray());
        return file;
    }

    static String[] names(String... n) {
        return n;
    }

    private static TensorProto.Builder tensor(String name, ElementType type, long... dims) {
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(type.onnxCode());
        for (long d : dims) {
            t.addDims(d);
        }
        return t;
    }

    private static ValueInfoProto valueInfo(String name, ElementType type, Object... dims) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (Object d : dims) {
            TensorShapeProto.Dimension.Builder dim = TensorShapeProto.Dimension.newBuilder();
            if (d instanceof Number) {
                dim.setDimValue(((Number) d).longValue());
            } else if (d instanceof String) {
                dim.setDimParam((String) d);
            }
            shape.addDim(dim);
        }
        return ValueInfoProto.newBuilder()
                .setName(name)
                .setType(TypeProto.newBuilder()
                        .setTensorType(TypeProto.Tensor.newBuilder()
                                .setElemType(type.onnxCode())
                                .setShape(shape)))
                .build();
    }

    private static AttributeProto attribute(String name, Object value) {
        AttributeProto.Builder a = AttributeProto.newBuilder().setName(name);
        if (value instanceof Long || value instanceof Integer) {
            a.setType(AttributeProto.AttributeType.INT).setI(((Number) value).longValue());
        } else if (value instanceof Float) {
            a.setType(AttributeProto.AttributeType.FLOAT).setF((Float) value);
        } else if (value instanceof String) {
            a.setType(AttributeProto.AttributeType.STRING).setS(ByteString.copyFromUtf8((String) value));
        } else if (value instanceof long[]) {
            a.setType(AttributeProto.AttributeType.INTS);
            for (long v : (long[]) value) {
                a.addInts(v);
            }
        } else if (value instanceof float[]) {
            a.setType(AttributeProto.AttributeType.FLOATS);
            for (float v : (float[]) value) {
                a.addFloats(v);
            }
        } else if (value instanceof String[]) {
            a.setType(AttributeProto.AttributeType.STRINGS);
            for (String v : (String[]) value) {
                a.addStrings(ByteString.copyFromUtf8(v));
            }
        } else {
            throw new IllegalArgumentException("Unsupported attribute value " + value);
        }
        return a.build();
    }
}
