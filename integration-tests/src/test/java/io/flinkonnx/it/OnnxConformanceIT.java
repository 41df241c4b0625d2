package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.ModelChecks;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.model.ModelSource;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.Test;

/**
 * The ONNX backend test suite through {@link ModelChecks#verify} (the library's loader, checks and tensor
 * conversion on ONNX Runtime): every case passes except those listed in
 * {@code conformance/known-failures.tsv}, and each listed case still fails <em>for its recorded reason</em>:
 * the category of the actual failure must equal the recorded one and the recorded reason must be a
 * substring of the actual failure text (paths relative to the suite's root). A listed case that fails
 * differently, or now passes, or no longer exists, fails the test. The suite is Debian's
 * {@code libonnx-testdata}, which {@code .ci/run} installs; where it is not installed the committed subset
 * under {@code flink-onnx-operator/src/test/resources/onnx-backend} runs instead, and the test says so.
 * Every run writes the actual failures, in the list's format, to {@code target/conformance-failures.tsv}.
 */
class OnnxConformanceIT {
    private static final Path DEBIAN = Path.of(System.getProperty("onnx.testdata", "/usr/share/libonnx-testdata/data"));
    private static final Path SUBSET = Path.of("../flink-onnx-operator/src/test/resources/onnx-backend");

    /** Why a case fails, as recorded in the list's category column. */
    enum Category {
        /** ONNX Runtime refuses the model when creating the session. */
        ORT_CANNOT_LOAD,
        /** The model runs but an output differs from the ONNX reference beyond tolerance. */
        ORT_DIFFERS,
        /** Inputs, outputs or element types that ORT's Java API (or record conversion) cannot carry. */
        ORT_JAVA_API,
        /** StringNormalizer needs the en_US.UTF-8 locale, absent on this machine. */
        ORT_NEEDS_LOCALE
    }

    /** An actual failure: its category and its text with the suite's root path removed. */
    record Failure(Category category, String text) {}

    /** A line of the list. */
    record Known(Category category, String reason) {}

    @Test
    void everyBackendCaseThatOrtCanRunPassesAndEveryKnownFailureFailsForItsRecordedReason() throws Exception {
        boolean debian = Files.isDirectory(DEBIAN);
        Path root = debian ? DEBIAN : SUBSET;
        List<Path> cases;
        try (Stream<Path> s = Files.walk(root, 2)) {
            cases = s.filter(p -> Files.isRegularFile(p.resolve("model.onnx")))
                    .sorted()
                    .collect(Collectors.toList());
        }
        Map<String, Known> known = knownFailures();
        Map<String, String> unexpected = new TreeMap<>();
        Map<String, String> failingDifferently = new TreeMap<>();
        List<String> nowPassing = new ArrayList<>();
        List<String> seen = new ArrayList<>();
        StringBuilder actual = new StringBuilder("# case\tcategory\tactual failure (root " + root + ")\n");
        int passed = 0;
        for (Path c : cases) {
            String name = root.relativize(c).toString();
            seen.add(name);
            Failure failure = failure(c, root);
            Known k = known.get(name);
            if (failure == null) {
                passed++;
                // A locale case passes where en_US.UTF-8 is installed: that is its recorded reason, not a fix.
                if (k != null && !(k.category() == Category.ORT_NEEDS_LOCALE && hasEnUsUtf8Locale())) {
                    nowPassing.add(name);
                }
                continue;
            }
            actual.append(name)
                    .append('\t')
                    .append(failure.category())
                    .append('\t')
                    .append(failure.text())
                    .append('\n');
            if (k == null) {
                unexpected.put(name, failure.category() + ": " + failure.text());
            } else if (k.category() != failure.category() || !failure.text().contains(k.reason())) {
                failingDifferently.put(
                        name,
                        "recorded " + k.category() + " \"" + k.reason() + "\", now " + failure.category() + " \""
                                + failure.text() + "\"");
            }
        }
        // Only the full suite holds every listed case; the committed subset holds a few passing ones.
        List<String> missing = debian
                ? known.keySet().stream()
                        .filter(n -> !seen.contains(n))
                        .sorted()
                        .collect(Collectors.toList())
                : List.of();
        String summary = String.format(
                Locale.ROOT,
                "ONNX backend conformance on %s%s: %d cases, %d pass, %d fail"
                        + " (%d listed, %d failing differently than recorded, %d unexpected); %d listed now pass",
                root,
                debian ? "" : " (libonnx-testdata not installed: committed subset only)",
                cases.size(),
                passed,
                cases.size() - passed,
                cases.size() - passed - unexpected.size(),
                failingDifferently.size(),
                unexpected.size(),
                nowPassing.size());
        System.out.println(summary);
        Files.writeString(Path.of("target/conformance.txt"), summary + "\n");
        Files.writeString(Path.of("target/conformance-failures.tsv"), actual.toString());

        assertThat(cases).as("test cases found under %s", root).isNotEmpty();
        // Every kind of mismatch at once, so that one run tells a maintainer all there is to change.
        SoftAssertions.assertSoftly(soft -> {
            soft.assertThat(unexpected)
                    .as("cases that fail and are not in known-failures.tsv (actual failures in"
                            + " target/conformance-failures.tsv)")
                    .isEmpty();
            soft.assertThat(failingDifferently)
                    .as("known failures that now fail for another reason than recorded in"
                            + " known-failures.tsv: find out why, then update their category and reason")
                    .isEmpty();
            soft.assertThat(nowPassing)
                    .as("known failures that now pass: remove them from known-failures.tsv")
                    .isEmpty();
            soft.assertThat(missing)
                    .as("cases in known-failures.tsv that are not in %s: remove them", root)
                    .isEmpty();
        });
    }

    /** Null when every data set of the case passes, else the first failure. */
    static Failure failure(Path testCase, Path root) {
        List<ModelChecks.SetResult> results;
        try {
            results = ModelChecks.verify(
                    ModelSource.of(testCase.resolve("model.onnx").toString()), testCase, DriftTolerance.defaults());
        } catch (Exception e) {
            String text = relative(e.getMessage(), root);
            return new Failure(isLocale(text) ? Category.ORT_NEEDS_LOCALE : Category.ORT_CANNOT_LOAD, text);
        }
        for (ModelChecks.SetResult r : results) {
            if (r.passed()) {
                continue;
            }
            if (r.error != null) {
                String text = relative(r.error, root);
                return new Failure(isLocale(text) ? Category.ORT_NEEDS_LOCALE : Category.ORT_JAVA_API, text);
            }
            // Output names first, numbers after: the numbers of a random op (Bernoulli) change run to run.
            List<OutputDrift> outside =
                    r.report.outputs.stream().filter(o -> !o.withinTolerance).collect(Collectors.toList());
            return new Failure(
                    Category.ORT_DIFFERS,
                    "outputs differ from the ONNX reference in "
                            + outside.stream().map(o -> o.output).collect(Collectors.joining(", ")) + ": " + outside);
        }
        return null;
    }

    private static Boolean enUsUtf8;

    /** Whether {@code locale -a} lists en_US.UTF-8 (which StringNormalizer's cases need). */
    private static synchronized boolean hasEnUsUtf8Locale() {
        if (enUsUtf8 == null) {
            try {
                Process p = new ProcessBuilder("locale", "-a")
                        .redirectErrorStream(true)
                        .start();
                String all = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                p.waitFor();
                enUsUtf8 = all.lines().anyMatch(l -> l.trim().replace("-", "").equalsIgnoreCase("en_US.utf8"));
            } catch (Exception e) {
                enUsUtf8 = false;
            }
        }
        return enUsUtf8;
    }

    private static boolean isLocale(String text) {
        return text.contains("Failed to construct locale");
    }

    /** The text with the suite's root (absolute or as given) removed from paths, so both roots read alike. */
    private static String relative(String text, Path root) {
        String t = String.valueOf(text);
        t = t.replace(root.toAbsolutePath().normalize() + "/", "");
        return t.replace(root + "/", "");
    }

    static Map<String, Known> knownFailures() throws Exception {
        Map<String, Known> known = new TreeMap<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                OnnxConformanceIT.class.getResourceAsStream("/conformance/known-failures.tsv"),
                StandardCharsets.UTF_8))) {
            int line = 0;
            for (String l = in.readLine(); l != null; l = in.readLine()) {
                line++;
                if (l.startsWith("#") || l.isBlank()) {
                    continue;
                }
                String[] cols = l.split("\t", 3);
                if (cols.length != 3 || cols[2].isBlank()) {
                    throw new IllegalStateException("known-failures.tsv line " + line + " needs three tab-separated"
                            + " columns (case, category, reason), got: " + l);
                }
                Known previous = known.put(cols[0], new Known(Category.valueOf(cols[1]), cols[2]));
                if (previous != null) {
                    throw new IllegalStateException(
                            "known-failures.tsv lists " + cols[0] + " twice (line " + line + ")");
                }
            }
        }
        return known;
    }
}
