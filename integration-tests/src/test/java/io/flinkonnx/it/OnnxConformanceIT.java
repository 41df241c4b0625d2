package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.ModelChecks;
import io.flinkonnx.model.ModelSource;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The ONNX backend test suite through {@link ModelChecks#verify} (the library's loader, checks and tensor
 * conversion on ONNX Runtime): every case passes except those listed, with the reason, in
 * {@code conformance/known-failures.tsv}. The suite is Debian's {@code libonnx-testdata}, which
 * {@code .ci/run} installs; where it is not installed the committed subset under
 * {@code flink-onnx-operator/src/test/resources/onnx-backend} runs instead, and the test says so.
 */
class OnnxConformanceIT {
    private static final Path DEBIAN = Path.of(System.getProperty("onnx.testdata", "/usr/share/libonnx-testdata/data"));
    private static final Path SUBSET = Path.of("../flink-onnx-operator/src/test/resources/onnx-backend");

    @Test
    void everyBackendCaseThatOrtCanRunPasses() throws Exception {
        Path root = Files.isDirectory(DEBIAN) ? DEBIAN : SUBSET;
        List<Path> cases;
        try (Stream<Path> s = Files.walk(root, 2)) {
            cases = s.filter(p -> Files.isRegularFile(p.resolve("model.onnx"))).sorted().collect(Collectors.toList());
        }
        Map<String, String> known = knownFailures();
        Map<String, String> unexpected = new TreeMap<>();
        List<String> nowPassing = new ArrayList<>();
        int passed = 0;
        for (Path c : cases) {
            String name = root.relativize(c).toString();
            String failure = failure(c);
            if (failure == null) {
                passed++;
                if (known.containsKey(name)) {
                    nowPassing.add(name);
                }
            } else if (!known.containsKey(name)) {
                unexpected.put(name, failure);
            }
        }
        String summary = String.format("ONNX backend conformance on %s: %d cases, %d pass, %d known failures%s",
                root, cases.size(), passed, cases.size() - passed - unexpected.size(),
                nowPassing.isEmpty() ? "" : "; now passing, remove from known-failures.tsv: " + nowPassing);
        System.out.println(summary);
        Files.writeString(Path.of("target/conformance.txt"), summary + "\n");
        assertThat(cases).as("test cases found under %s", root).isNotEmpty();
        assertThat(unexpected).as("cases that fail and are not in known-failures.tsv").isEmpty();
    }

    /** Null when every data set of the case passes, else the first reason. */
    private static String failure(Path testCase) {
        try {
            for (ModelChecks.SetResult r : ModelChecks.verify(ModelSource.of(testCase.resolve("model.onnx").toString()),
                    testCase, DriftTolerance.defaults())) {
                if (!r.passed()) {
                    return r.error != null ? r.error : "out of tolerance: " + r.report.outputs;
                }
            }
            return null;
        } catch (Exception e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }

    private static Map<String, String> knownFailures() throws Exception {
        Map<String, String> known = new TreeMap<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                OnnxConformanceIT.class.getResourceAsStream("/conformance/known-failures.tsv"), StandardCharsets.UTF_8))) {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                if (!line.startsWith("#") && !line.isBlank()) {
                    String[] cols = line.split("\t", 3);
                    known.put(cols[0], cols[1]);
                }
            }
        }
        return known;
    }
}
