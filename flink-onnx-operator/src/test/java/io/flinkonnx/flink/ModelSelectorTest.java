package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link ModelSelector#uriTemplate}: a record's key names a model in the template's folder, never outside. */
class ModelSelectorTest {
    @TempDir
    Path dir;

    private ModelSelector<String> selector(String template) {
        return ModelSelector.uriTemplate(record -> record, template);
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "%2E%2E%2Fprivate%2Fother", // the reported bypass: every character encoded
                "%2e%2e%2fprivate%2fother", // lower-case escapes
                "%2E%2E/private/other",
                "..%2Fprivate%2Fother",
                "%252E%252E%252Fprivate%252Fother", // double-encoded
                "..%5Cprivate%5Cother", // encoded backslashes
                "..\\private\\other",
                "../private/other",
                "%2Fetc%2Fpasswd", // an absolute path
                "/etc/passwd",
                "..",
                "%00",
                "x@other", // a host: s3://tenant-{key}/ would move to the bucket 'other'
                "x%40other",
                "file:", // a scheme: {key}/model.onnx would become file:/model.onnx
                "hdfs%3A",
                "m.onnx?x=1",
                "m.onnx#frag"
            })
    void aKeyThatDecodesToAPathOrParentSegmentIsRefusedNamingTheKey(String key) throws Exception {
        for (String template : new String[] {
            "file://" + dir.resolve("models") + "/fraud-{key}.onnx",
            dir.resolve("models") + "/{key}.onnx",
            "s3://bucket/models/{key}/model.onnx",
            "s3://tenant-{key}/model.onnx",
            "{key}/model.onnx"
        }) {
            assertThatThrownBy(() -> selector(template).select(key))
                    .as(template)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("The record's model key '" + key + "' cannot name a model in " + template);
        }
    }

    @Test
    void theReportedBypassNoLongerReachesAModelOutsideTheFolder() throws Exception {
        Path outside = new TestModels.Mlp(4, 8, 2)
                .writeTo(Files.createDirectories(dir.resolve("private")).resolve("other.onnx"));
        Files.createDirectories(dir.resolve("models"));
        String template = "file://" + dir.resolve("models") + "/{key}.onnx";
        // What the bypass resolved to before: the file: URI decodes the escapes and walks out of models/.
        String escaped = "file://" + dir.resolve("models") + "/%2E%2E%2Fprivate%2Fother.onnx";
        try (LocalModel model = ModelSource.of(escaped).fetch()) {
            assertThat(model.path()).hasSameBinaryContentAs(outside);
        }
        assertThatThrownBy(() -> selector(template).select("%2E%2E%2Fprivate%2Fother"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("a key is a file name");
    }

    @Test
    void aTemplateWhoseCharactersAroundTheKeyWouldFormAParentSegmentIsRefused() {
        // "." + ".{key}" makes "..": the key alone is harmless, the path it forms is not
        assertThatThrownBy(
                        () -> selector("s3://bucket/models/.{key}/model.onnx").select("%2E"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("leaves the template's folder 's3://bucket/models/'");
    }

    @Test
    void ordinaryKeysResolveInTheTemplatesFolder() throws Exception {
        assertThat(selector("s3://bucket/models/fraud-{key}.onnx").select("DE").uri())
                .isEqualTo("s3://bucket/models/fraud-DE.onnx");
        assertThat(selector("s3://bucket/models/{key}/model.onnx")
                        .select("tenant-7_v2.1")
                        .uri())
                .isEqualTo("s3://bucket/models/tenant-7_v2.1/model.onnx");
        // a safe escape (a space) is kept for the file system to decode
        assertThat(selector("s3://bucket/models/{key}.onnx")
                        .select("new%20york")
                        .uri())
                .isEqualTo("s3://bucket/models/new%20york.onnx");
        Path model = new TestModels.Mlp(4, 8, 2)
                .writeTo(Files.createDirectories(dir.resolve("models")).resolve("fraud-FR.onnx"));
        String template = "file://" + dir.resolve("models") + "/fraud-{key}.onnx";
        try (LocalModel fetched =
                ModelSource.of(selector(template).select("FR").uri()).fetch()) {
            assertThat(fetched.path()).hasSameBinaryContentAs(model);
        }
    }

    @Test
    void anEmptyOrNullKeyIsRefused() {
        assertThatThrownBy(() -> selector("s3://b/{key}.onnx").select(""))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("it is empty");
        assertThatThrownBy(() -> ModelSelector.<String>uriTemplate(r -> null, "s3://b/{key}.onnx")
                        .select("x"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("it is empty");
    }
}
