package io.flinkonnx.model;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The version label a model URI gives when nothing else names its version. */
class VersionLabelTest {
    @Test
    void aVersionFolderNamesTheVersion() {
        assertThat(VersionLabel.ofUri("s3://bucket/models/fraud/v7/fraud.onnx")).isEqualTo("v7");
        assertThat(VersionLabel.ofUri("/models/fraud/2.1.0/fraud.onnx")).isEqualTo("2.1.0");
        assertThat(VersionLabel.ofUri("/models/fraud/V3_1/fraud.onnx")).isEqualTo("V3_1");
        assertThat(VersionLabel.ofUri("file:///models/fraud/20240131-2/fraud.onnx"))
                .isEqualTo("20240131-2");
    }

    @Test
    void aFileCalledModelIsNamedByItsFolder() {
        assertThat(VersionLabel.ofUri("/models/fraud-DE/model.onnx")).isEqualTo("fraud-DE");
    }

    @Test
    void elseTheFileNameWithoutItsExtension() {
        assertThat(VersionLabel.ofUri("/models/fraud/fraud-7.onnx")).isEqualTo("fraud-7");
        assertThat(VersionLabel.ofUri("/models/fraud-DE.ort")).isEqualTo("fraud-DE");
        assertThat(VersionLabel.ofUri("fraud.onnx")).isEqualTo("fraud");
        assertThat(VersionLabel.ofUri("/fraud.onnx")).isEqualTo("fraud");
        assertThat(VersionLabel.ofUri("classpath:fraud.onnx")).isEqualTo("classpath:fraud");
        assertThat(VersionLabel.ofUri("C:\\models\\v2\\fraud.onnx")).isEqualTo("v2");
        assertThat(VersionLabel.ofUri("/models/.hidden")).isEqualTo(".hidden");
    }
}
