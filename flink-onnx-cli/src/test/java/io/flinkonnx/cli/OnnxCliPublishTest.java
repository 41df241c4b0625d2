package io.flinkonnx.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.model.testing.TestModels;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code publish}: the version folder's layout, its atomic creation (temporary folder, then rename; in place
 * with the model last where the file system cannot rename), and the refusals, on real models, real ORT
 * sessions and real file systems.
 */
class OnnxCliPublishTest {
    @TempDir
    Path dir;

    private TestModels.Mlp mlp;
    private Path model;
    private Path models;
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    @BeforeEach
    void model() throws Exception {
        mlp = new TestModels.Mlp(4, 8, 2);
        model = mlp.writeTo(dir.resolve("mlp.onnx"));
        models = dir.resolve("models/fraud");
    }

    private int run(String... args) {
        out.reset();
        err.reset();
        return OnnxCli.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void publishWritesTheModelItsSha256FileAndTheGoldenSetsIntoTheVersionFolder() throws Exception {
        Path golden = goldenVectors(dir.resolve("golden"), mlp.reference(TestModels.features(1, 4)));

        assertThat(run(
                        "publish",
                        model.toString(),
                        "--to",
                        models.toString(),
                        "--version",
                        "8",
                        "--golden",
                        golden.toString()))
                .as("exit status; out: %s err: %s", out(), err())
                .isEqualTo(OnnxCli.OK);

        Path v8 = models.resolve("v8");
        String sha256 = sha256(model);
        assertThat(list(models)).containsExactly("v8");
        assertThat(list(v8)).containsExactly("mlp.onnx", "mlp.onnx.sha256", "test_data_set_0");
        assertThat(v8.resolve("mlp.onnx")).hasSameBinaryContentAs(model);
        assertThat(Files.readString(v8.resolve("mlp.onnx.sha256"), StandardCharsets.US_ASCII))
                .isEqualTo(sha256 + "  mlp.onnx\n");
        assertThat(list(v8.resolve("test_data_set_0"))).containsExactly("input_0.pb", "output_0.pb");
        for (String file : List.of("input_0.pb", "output_0.pb")) {
            assertThat(v8.resolve("test_data_set_0").resolve(file))
                    .hasSameBinaryContentAs(golden.resolve("test_data_set_0").resolve(file));
        }
        assertThat(out())
                .contains("OK: " + model + " loads in ONNX Runtime")
                .contains("test_data_set_0: PASS")
                .contains("published file:" + v8 + " (written to file:" + models + "/.v8.tmp-")
                .contains(", then renamed)")
                .contains("file:" + v8.resolve("mlp.onnx") + "  " + Files.size(model) + " bytes  sha256 " + sha256)
                .contains("file:" + v8.resolve("mlp.onnx.sha256"))
                .contains("file:" + v8.resolve("test_data_set_0") + "/");
        assertThat(err()).isEmpty();

        // what was published passes verify from its own folder
        assertThat(run("verify", v8.resolve("mlp.onnx").toString(), "--test-data", v8.toString()))
                .isEqualTo(OnnxCli.OK);
    }

    @Test
    void publishKeepsAnOrtModelsFileName() throws Exception {
        Path ort = dir.resolve("mlp.ort");
        assertThat(run("optimize", model.toString(), "-o", ort.toString())).isEqualTo(OnnxCli.OK);

        assertThat(run("publish", ort.toString(), "--to", models.toString(), "--version", "3"))
                .as("err: %s", err())
                .isEqualTo(OnnxCli.OK);

        assertThat(list(models.resolve("v3"))).containsExactly("mlp.ort", "mlp.ort.sha256");
        assertThat(Files.readString(models.resolve("v3/mlp.ort.sha256"))).isEqualTo(sha256(ort) + "  mlp.ort\n");
    }

    @Test
    void publishRefusesAnExistingVersionNamingItsFolderAndLeavesItAsItWas() throws Exception {
        assertThat(run("publish", model.toString(), "--to", models.toString(), "--version", "1"))
                .isEqualTo(OnnxCli.OK);
        Path other = new TestModels.Mlp(4, 16, 2).writeTo(dir.resolve("other/mlp.onnx"));

        assertThat(run("publish", other.toString(), "--to", models.toString(), "--version", "1"))
                .isEqualTo(OnnxCli.USAGE);

        assertThat(err())
                .contains("error: Version folder file:" + models.resolve("v1") + " already exists")
                .contains("publish a higher version");
        assertThat(models.resolve("v1/mlp.onnx")).hasSameBinaryContentAs(model);
        assertThat(list(models)).containsExactly("v1");
        assertThat(run("publish", other.toString(), "--to", models.toString(), "--version", "2"))
                .isEqualTo(OnnxCli.OK);
        assertThat(models.resolve("v2/mlp.onnx")).hasSameBinaryContentAs(other);
    }

    @Test
    void publishRefusesATruncatedModelNamingTheFileAndWritesNothing() throws Exception {
        Path truncated = dir.resolve("cut/mlp.onnx");
        Files.createDirectories(truncated.getParent());
        byte[] bytes = Files.readAllBytes(model);
        Files.write(truncated, Arrays.copyOf(bytes, bytes.length / 2));

        assertThat(run("publish", truncated.toString(), "--to", models.toString(), "--version", "4"))
                .isEqualTo(OnnxCli.FAILED);

        assertThat(err()).contains("FAILED: Model file " + truncated.toAbsolutePath() + " is not a valid ONNX model");
        assertThat(models).doesNotExist();
    }

    @Test
    void publishRefusesAModelThatFailsItsGoldenVectorsAndWritesNothing() throws Exception {
        float[] wrong = mlp.reference(TestModels.features(1, 4));
        wrong[1] += 0.5f;
        Path golden = goldenVectors(dir.resolve("golden"), wrong);

        assertThat(run(
                        "publish",
                        model.toString(),
                        "--to",
                        models.toString(),
                        "--version",
                        "5",
                        "--golden",
                        golden.toString()))
                .isEqualTo(OnnxCli.FAILED);

        assertThat(out()).contains("test_data_set_0: FAIL").contains("50.0000% outside");
        assertThat(err())
                .contains("FAILED: " + model + " does not pass the golden vectors in " + golden)
                .contains("nothing published to file:" + models.resolve("v5"));
        assertThat(models).doesNotExist();
    }

    @Test
    void publishHonoursASha256PinOnTheModel() throws Exception {
        assertThat(run("publish", model + "@sha256:" + "0".repeat(64), "--to", models.toString(), "--version", "6"))
                .isEqualTo(OnnxCli.FAILED);
        assertThat(err()).contains("sha256 mismatch");
        assertThat(models).doesNotExist();

        assertThat(run("publish", model + "@sha256:" + sha256(model), "--to", models.toString(), "--version", "6"))
                .isEqualTo(OnnxCli.OK);
        assertThat(list(models.resolve("v6"))).containsExactly("mlp.onnx", "mlp.onnx.sha256");
    }

    @Test
    void aWriteThatFailsHalfwayLeavesNeitherTheTemporaryFolderNorTheVersionFolder() throws Exception {
        Path golden = goldenVectors(dir.resolve("golden"), mlp.reference(TestModels.features(1, 4)));
        // verify reads input_N.pb and output_N.pb only; the copy reads every file of the set, and this one is gone
        Path dangling = golden.resolve("test_data_set_0/notes.txt");
        Files.createSymbolicLink(dangling, dir.resolve("no-such-file"));

        assertThat(run(
                        "publish",
                        model.toString(),
                        "--to",
                        models.toString(),
                        "--version",
                        "7",
                        "--golden",
                        golden.toString()))
                .isEqualTo(OnnxCli.FAILED);

        assertThat(err()).contains("FAILED: Cannot copy golden vector file " + dangling);
        assertThat(list(models)).as("no .v7.tmp-* folder and no v7 left").isEmpty();
    }

    @Test
    void whereTheFileSystemRefusesTheRenameTheFilesAreWrittenInPlaceWithTheModelLast() throws Exception {
        Path golden = goldenVectors(dir.resolve("golden"), mlp.reference(TestModels.features(1, 4)));
        String to = NoRenameFileSystemFactory.SCHEME + "://" + models;
        String printed = NoRenameFileSystemFactory.SCHEME + ":" + models; // Flink writes an empty authority so
        NoRenameFileSystemFactory.CREATED.clear();

        assertThat(run("publish", model.toString(), "--to", to, "--version", "9", "--golden", golden.toString()))
                .as("err: %s", err())
                .isEqualTo(OnnxCli.OK);

        Path v9 = models.resolve("v9");
        assertThat(list(models)).as("the temporary folder is gone").containsExactly("v9");
        assertThat(list(v9)).containsExactly("mlp.onnx", "mlp.onnx.sha256", "test_data_set_0");
        assertThat(v9.resolve("mlp.onnx")).hasSameBinaryContentAs(model);
        assertThat(Files.readString(v9.resolve("mlp.onnx.sha256"))).isEqualTo(sha256(model) + "  mlp.onnx\n");
        List<String> inPlace = NoRenameFileSystemFactory.CREATED.stream()
                .filter(p -> p.startsWith(v9 + "/"))
                .collect(Collectors.toList());
        assertThat(inPlace)
                .as("files created in the version folder, in order")
                .hasSize(4)
                .endsWith(
                        v9.resolve("mlp.onnx.sha256").toString(),
                        v9.resolve("mlp.onnx").toString());
        assertThat(out())
                .contains("published " + printed + "/v9 (written in place, model file last (renaming " + printed
                        + "/.v9.tmp-")
                .contains("the file system refused it");
    }

    @Test
    void helpDocumentsTheLayoutTheAtomicityAndTheExitStatus() {
        assertThat(run("publish", "--help")).isEqualTo(OnnxCli.OK);
        assertThat(out())
                .contains("usage: flink-onnx-cli publish")
                .contains("--to=TO")
                .contains("--version=N")
                .contains("--golden=DIR")
                .contains("TO/vN/MODEL_FILE ")
                .contains("TO/vN/MODEL_FILE.sha256")
                .contains("TO/vN/test_data_set_K/")
                .contains("TO/.vN.tmp-RANDOM/")
                .contains("the model file last")
                .contains("never overwritten (exit 2)");
        assertThat(run("--help")).isEqualTo(OnnxCli.OK);
        assertThat(out()).contains("publish");
    }

    /** One rule: publish takes every name the watcher orders, and the watcher's newest is the last published. */
    @Test
    void publishAcceptsEveryVersionNameTheWatcherOrders() throws Exception {
        // per folder, names of one scheme in the order they are published; "1" is published as v1
        String[][] schemes = {
            {"1", "v2", "v9", "v10"},
            {"2.9.9", "2.10.0", "2.10.1"},
            {"2026-09-30", "2026-12-04"},
            {"fraud-7", "fraud-12"}
        };
        for (String[] scheme : schemes) {
            Path to = models.resolve(scheme[0].replace('.', '_'));
            for (String name : scheme) {
                String folder = name.equals("1") ? "v1" : name;
                assertThat(run("publish", model.toString(), "--to", to.toString(), "--version", name))
                        .as("publish --version %s; err: %s", name, err())
                        .isEqualTo(OnnxCli.OK);
                assertThat(to.resolve(folder).resolve("mlp.onnx")).hasSameBinaryContentAs(model);
                assertThat(io.flinkonnx.flink.versions.ModelFolder.newest(to.toString())
                                .orElseThrow()
                                .label)
                        .as("the watcher's newest after publishing %s", name)
                        .isEqualTo(folder);
            }
        }
    }

    @Test
    void publishUsageErrorsExitTwo() throws Exception {
        assertThat(run("publish", model.toString(), "--version", "1")).isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Missing required option: '--to=TO'").contains("usage: flink-onnx-cli publish");
        assertThat(run("publish", model.toString(), "--to", models.toString(), "--version", "eight"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("'eight'");
        assertThat(err()).contains("must hold a number");
        assertThat(run("publish", model.toString(), "--to", models.toString(), "--version", "_v1"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("'_v1'").contains("must not start with '.' or '_'");
        assertThat(run("publish", model.toString(), "--to", models.toString(), "--version", "a/v1"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("'a/v1'");
        assertThat(run(
                        "publish",
                        model.toString(),
                        "--to",
                        models.toString(),
                        "--version",
                        "1",
                        "--golden",
                        dir.resolve("nowhere").toString()))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("Golden vectors folder not found: " + dir.resolve("nowhere"));
        Path external = mlp.writeWithExternalWeights(dir.resolve("ext/mlp.onnx"), "w1.bin");
        assertThat(run("publish", external.toString(), "--to", models.toString(), "--version", "1"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("refers to external data [w1.bin]");
        Path unnamed = Files.copy(model, dir.resolve("mlp.bin"));
        assertThat(run("publish", unnamed.toString(), "--to", models.toString(), "--version", "1"))
                .isEqualTo(OnnxCli.USAGE);
        assertThat(err()).contains("is named 'mlp.bin'");
        assertThat(models).doesNotExist();
    }

    private Path goldenVectors(Path folder, float[] y) throws Exception {
        OnnxCliTest.writeSet(folder.resolve("test_data_set_0"), TestModels.features(1, 4), y);
        return folder;
    }

    private static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    private static List<String> list(Path folder) throws Exception {
        try (Stream<Path> children = Files.list(folder)) {
            return children.map(p -> p.getFileName().toString()).sorted().collect(Collectors.toList());
        }
    }

    @Test
    void whatPublishWritesIsTheVersionAModelWatcherServesNextPinnedToItsSha256() throws Exception {
        assertThat(run("publish", model.toString(), "--to", models.toString(), "--version", "7"))
                .isEqualTo(OnnxCli.OK);
        assertThat(run("publish", model.toString(), "--to", models.toString(), "--version", "12"))
                .isEqualTo(OnnxCli.OK);

        io.flinkonnx.flink.versions.ModelFolder.Version newest = io.flinkonnx.flink.versions.ModelFolder.newest(
                        models.toString())
                .orElseThrow();
        assertThat(newest.label).isEqualTo("v12");
        assertThat(newest.modelUri).endsWith("/v12/mlp.onnx");
        assertThat(newest.sha256).isEqualTo(sha256(model));
    }
}
