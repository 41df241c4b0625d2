package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The layout stays a map of the architecture: the internal packages of the runtime depend on each other
 * without cycles (tensor, placement, session, drift, engine), and none grows into a grab bag. The root
 * package is the public API; internals use its types and it creates them, so it is left out of the cycle
 * rule by design.
 */
class PackageStructureTest {
    private static final Path SOURCES = Path.of("src/main/java");
    private static final String ROOT = "io.flinkonnx.flink";
    private static final Pattern IMPORT =
            Pattern.compile("^import (io\\.flinkonnx\\.flink\\.[a-z]+)\\.[A-Z]\\w*;", Pattern.MULTILINE);

    private static Map<String, Set<String>> internalDependencies() throws IOException {
        Map<String, Set<String>> deps = new TreeMap<>();
        try (Stream<Path> files = Files.walk(SOURCES)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                String pkg = SOURCES.relativize(f.getParent()).toString().replace('/', '.');
                if (pkg.equals(ROOT)) {
                    continue;
                }
                Set<String> out = deps.computeIfAbsent(pkg, k -> new TreeSet<>());
                Matcher m = IMPORT.matcher(Files.readString(f));
                while (m.find()) {
                    if (!m.group(1).equals(pkg)) {
                        out.add(m.group(1));
                    }
                }
            }
        }
        return deps;
    }

    @Test
    void internalPackagesHaveNoImportCycle() throws IOException {
        Map<String, Set<String>> deps = internalDependencies();
        assertThat(deps.keySet())
                .as("internal packages")
                .contains(ROOT + ".engine", ROOT + ".tensor", ROOT + ".session");
        for (String start : deps.keySet()) {
            List<String> path = new ArrayList<>();
            assertThat(cycleFrom(start, start, deps, path, new HashSet<>()))
                    .as("import cycle through %s: %s", start, path)
                    .isFalse();
        }
    }

    private static boolean cycleFrom(
            String start, String at, Map<String, Set<String>> deps, List<String> path, Set<String> seen) {
        for (String next : deps.getOrDefault(at, Set.of())) {
            path.add(next);
            if (next.equals(start) || (seen.add(next) && cycleFrom(start, next, deps, path, seen))) {
                return true;
            }
            path.remove(path.size() - 1);
        }
        return false;
    }

    @Test
    void noInternalPackageHoldsMoreThanFifteenClasses() throws IOException {
        try (Stream<Path> dirs = Files.walk(SOURCES)) {
            for (Path dir : dirs.filter(Files::isDirectory).toList()) {
                String pkg = SOURCES.relativize(dir).toString().replace('/', '.');
                if (!pkg.startsWith(ROOT + ".")) {
                    continue;
                }
                try (Stream<Path> files = Files.list(dir)) {
                    assertThat(files.filter(p -> p.toString().endsWith(".java")).count())
                            .as(pkg)
                            .isLessThanOrEqualTo(15);
                }
            }
        }
    }
}
