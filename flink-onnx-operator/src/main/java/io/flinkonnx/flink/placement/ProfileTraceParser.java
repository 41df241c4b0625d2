package io.flinkonnx.flink.placement;

import io.flinkonnx.flink.NodePlacement;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.flink.annotation.Internal;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Reads ONNX Runtime's profile (a Chrome trace: a JSON array of events) for node placements: every
 * {@code "cat": "Node"} event named {@code <node>_kernel_time} carries {@code args.op_name},
 * {@code args.provider} and {@code dur} (microseconds). Fence events and session events are ignored.
 */
@Internal
public final class ProfileTraceParser {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String KERNEL_SUFFIX = "_kernel_time";

    private ProfileTraceParser() {}

    public static List<NodePlacement> parse(Path trace) throws IOException {
        return parse(Files.readString(trace));
    }

    public static List<NodePlacement> parse(String trace) throws IOException {
        JsonNode events = JSON.readTree(trace);
        if (events == null || !events.isArray()) {
            throw new IOException("Not an ONNX Runtime profile (expected a JSON array of trace events)");
        }
        List<NodePlacement> nodes = new ArrayList<>();
        for (JsonNode e : events) {
            String name = e.path("name").asText("");
            if (!"Node".equals(e.path("cat").asText()) || !name.endsWith(KERNEL_SUFFIX)) {
                continue;
            }
            JsonNode args = e.path("args");
            nodes.add(new NodePlacement(
                    name.substring(0, name.length() - KERNEL_SUFFIX.length()),
                    args.path("op_name").asText(""),
                    providerId(args.path("provider").asText("")),
                    e.path("dur").asLong(0)));
        }
        return nodes;
    }

    /** {@code CUDAExecutionProvider} -> {@code cuda}, the ids of {@code ProviderChain}. */
    public static String providerId(String ortName) {
        String id = ortName.endsWith("ExecutionProvider")
                ? ortName.substring(0, ortName.length() - "ExecutionProvider".length())
                : ortName;
        id = id.toLowerCase(Locale.ROOT);
        switch (id) {
            case "dml":
                return "directml";
            case "migraphx":
                return "migraphx";
            default:
                return id;
        }
    }
}
