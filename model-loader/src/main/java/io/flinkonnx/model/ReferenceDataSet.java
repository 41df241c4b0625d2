package io.flinkonnx.model;

import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.annotation.PublicEvolving;

/**
 * One of ONNX's golden-vector sets: a {@code test_data_set_N/} folder of {@code input_K.pb} and
 * {@code output_K.pb} TensorProtos, K in the order of the model's graph inputs and outputs (the layout of
 * the ONNX backend test suite and of {@code onnx.backend.test}).
 */
@PublicEvolving
public final class ReferenceDataSet implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final Pattern NUMBERED = Pattern.compile("(input|output)_(\\d+)\\.pb");

    private final String name;
    private final List<TensorData> inputs;
    private final List<TensorData> outputs;

    public ReferenceDataSet(String name, List<TensorData> inputs, List<TensorData> outputs) {
        this.name = name;
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
    }

    public String name() {
        return name;
    }

    public List<TensorData> inputs() {
        return inputs;
    }

    public List<TensorData> outputs() {
        return outputs;
    }

    /** Reads one {@code test_data_set_N} folder. */
    public static ReferenceDataSet read(Path folder) throws IOException {
        return new ReferenceDataSet(
                folder.getFileName().toString(), numbered(folder, "input"), numbered(folder, "output"));
    }

    /**
     * Reads every {@code test_data_set_*} folder below {@code folder} (or {@code folder} itself when it is
     * one), in name order; fails when there is none.
     */
    public static List<ReferenceDataSet> readAll(Path folder) throws IOException {
        List<ReferenceDataSet> out = new ArrayList<>();
        for (Path p : folders(folder)) {
            out.add(read(p));
        }
        return out;
    }

    /** The {@code test_data_set_*} folders below {@code folder} (or {@code folder} itself), in name order. */
    public static List<Path> folders(Path folder) throws IOException {
        if (!Files.isDirectory(folder)) {
            throw new IOException("Golden vectors folder not found: " + folder);
        }
        if (folder.getFileName().toString().startsWith("test_data_set_")) {
            return List.of(folder);
        }
        List<Path> sets;
        try (Stream<Path> children = Files.list(folder)) {
            sets = children.filter(p ->
                            Files.isDirectory(p) && p.getFileName().toString().startsWith("test_data_set_"))
                    .sorted()
                    .collect(Collectors.toList());
        }
        if (sets.isEmpty()) {
            throw new IOException("No test_data_set_* folder in " + folder);
        }
        return sets;
    }

    private static List<TensorData> numbered(Path folder, String kind) throws IOException {
        List<Path> files;
        try (Stream<Path> children = Files.list(folder)) {
            files = children.filter(p -> {
                        Matcher m = NUMBERED.matcher(p.getFileName().toString());
                        return m.matches() && m.group(1).equals(kind);
                    })
                    .sorted(Comparator.comparingInt(ReferenceDataSet::index))
                    .collect(Collectors.toList());
        }
        List<TensorData> tensors = new ArrayList<>();
        for (Path f : files) {
            tensors.add(TensorData.read(f));
        }
        return tensors;
    }

    private static int index(Path p) {
        Matcher m = NUMBERED.matcher(p.getFileName().toString());
        return m.matches() ? Integer.parseInt(m.group(2)) : Integer.MAX_VALUE;
    }
}
