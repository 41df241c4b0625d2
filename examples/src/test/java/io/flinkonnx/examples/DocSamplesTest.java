package io.flinkonnx.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every Java sample of README and {@code docs/} is compiled: it is, character for character (indentation aside),
 * a tagged region of {@code DocSamples.java}, which the build compiles against the library. A sample edited in
 * the docs alone, or an API change that breaks one, fails here or in the compiler.
 */
class DocSamplesTest {
    private static final Path ROOT = Path.of("..");
    private static final Path SAMPLES = Path.of("src/main/java/io/flinkonnx/examples/docs/DocSamples.java");
    private static final Pattern REGION =
            Pattern.compile("// tag::([\\w-]+)\\[]\\n(.*?)\\n\\s*// end::\\1\\[]", Pattern.DOTALL);

    /** The fenced blocks of {@code language} in {@code markdown}. */
    static List<String> blocks(String markdown, String language) {
        List<String> blocks = new ArrayList<>();
        List<String> lines = markdown.lines().toList();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).strip().equals("```" + language)) {
                StringBuilder block = new StringBuilder();
                for (i++; i < lines.size() && !lines.get(i).strip().startsWith("```"); i++) {
                    block.append(lines.get(i)).append('\n');
                }
                blocks.add(block.toString());
            }
        }
        return blocks;
    }

    /** {@code text} without its common indentation and trailing blanks. */
    static String dedent(String text) {
        return text.stripIndent().strip();
    }

    static List<Path> docs() throws IOException {
        List<Path> docs = new ArrayList<>(List.of(ROOT.resolve("README.md")));
        try (Stream<Path> pages = Files.list(ROOT.resolve("docs"))) {
            pages.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        return docs;
    }

    @Test
    void everyJavaSampleOfTheDocsIsACompiledRegionOfDocSamples() throws IOException {
        List<String> regions = new ArrayList<>();
        Matcher m = REGION.matcher(Files.readString(SAMPLES));
        while (m.find()) {
            regions.add(dedent(m.group(2)));
        }
        assertThat(regions).as("tagged regions").hasSizeGreaterThanOrEqualTo(8);
        int samples = 0;
        for (Path doc : docs()) {
            for (String block : blocks(Files.readString(doc), "java")) {
                samples++;
                assertThat(regions)
                        .as("a Java sample of %s is not a tagged region of %s:%n%s", doc, SAMPLES, block)
                        .contains(dedent(block));
            }
        }
        assertThat(samples).as("Java samples in README and docs/").isGreaterThanOrEqualTo(8);
    }
}
