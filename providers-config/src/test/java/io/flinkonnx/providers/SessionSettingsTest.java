package io.flinkonnx.providers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.apache.flink.configuration.Configuration;
import org.junit.jupiter.api.Test;

class SessionSettingsTest {

    @Test
    void defaultsUseOneThreadPerSessionSoSlotsDoNotOversubscribe() {
        SessionSettings s = SessionSettings.defaults();
        assertThat(s.intraOpThreads()).isEqualTo(1);
        assertThat(s.interOpThreads()).isEqualTo(1);
        assertThat(s.optimizationLevel()).isEqualTo(SessionSettings.OptimizationLevel.ALL);
        assertThat(s.executionMode()).isEqualTo(SessionSettings.ExecutionMode.SEQUENTIAL);
        assertThat(s.cpuMemoryArena()).isTrue();
    }

    @Test
    void threadCountsBelowOneAreRefusedWithTheReason() {
        assertThatThrownBy(() -> SessionSettings.builder().intraOpThreads(0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("intraOpThreads must be >= 1, got 0");
    }

    @Test
    void readsEverySettingFromFlinkConfiguration() {
        Configuration conf = new Configuration();
        conf.setString("onnx.session.optimization-level", "basic");
        conf.setString("onnx.session.intra-op-threads", "2");
        conf.setString("onnx.session.inter-op-threads", "3");
        conf.setString("onnx.session.cpu-memory-arena", "false");
        conf.setString("onnx.session.memory-pattern", "false");
        conf.setString("onnx.session.execution-mode", "parallel");
        conf.setString("onnx.session.optimized-model-path", "/tmp/m.ort");
        conf.setString("onnx.session.optimized-model-format", "ort");
        conf.setString("onnx.session.config.session.disable_cpu_ep_fallback", "1");

        SessionSettings s = SessionSettings.fromConfiguration(conf);

        assertThat(s)
                .isEqualTo(SessionSettings.builder()
                        .optimizationLevel(SessionSettings.OptimizationLevel.BASIC)
                        .intraOpThreads(2)
                        .interOpThreads(3)
                        .cpuMemoryArena(false)
                        .memoryPatternOptimization(false)
                        .executionMode(SessionSettings.ExecutionMode.PARALLEL)
                        .saveOptimizedModel("/tmp/m.ort", SessionSettings.ModelFileFormat.ORT)
                        .configEntry("session.disable_cpu_ep_fallback", "1")
                        .build());
    }

    @Test
    void onnxRuntimeExtensionsAreOffByDefaultAndPartOfTheSharingKey() {
        SessionSettings plain = SessionSettings.defaults();
        SessionSettings extended =
                SessionSettings.builder().onnxRuntimeExtensions(true).build();
        assertThat(plain.onnxRuntimeExtensions()).isFalse();
        assertThat(extended.onnxRuntimeExtensions()).isTrue();
        // toString() is the registry's key: sessions with other custom-op libraries must never be shared
        assertThat(extended.toString()).isNotEqualTo(plain.toString()).contains("onnxruntime-extensions");
        assertThat(extended).isNotEqualTo(plain);
        Configuration conf = new Configuration();
        conf.setString("onnx.session.onnxruntime-extensions", "true");
        assertThat(SessionSettings.fromConfiguration(conf)).isEqualTo(extended);
        conf.setString("onnx.session.onnxruntime-extensions", "yes");
        assertThatThrownBy(() -> SessionSettings.fromConfiguration(conf))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("Session setting onnx.session.onnxruntime-extensions must be true or false, got 'yes'");
    }

    @Test
    void badConfigurationValuesSayWhatIsAllowed() {
        Configuration conf = new Configuration();
        conf.setString("onnx.session.optimization-level", "max");
        assertThatThrownBy(() -> SessionSettings.fromConfiguration(conf))
                .hasMessage("Session setting onnx.session.optimization-level must be one of"
                        + " [DISABLE_ALL, BASIC, EXTENDED, ALL], got 'max'");
        Configuration unknown = new Configuration();
        unknown.setString("onnx.session.threads", "2");
        assertThatThrownBy(() -> SessionSettings.fromConfiguration(unknown))
                .hasMessageStartingWith("Unknown session setting 'onnx.session.threads'");
    }
}
