package io.flinkonnx.providers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.junit.jupiter.api.Test;

class ProviderChainConfigurationTest {

    @Test
    void readsChainStrictAndPerProviderOptionsFromFlinkConfiguration() {
        Configuration conf = new Configuration();
        conf.setString("onnx.providers.chain", "tensorrt > cuda > cpu");
        conf.setString("onnx.providers.strict", "true");
        conf.setString("onnx.providers.cuda.device_id", "1");
        conf.setString("onnx.providers.tensorrt.trt_fp16_enable", "true");
        conf.setString("unrelated.key", "x");

        ProviderChain chain = ProviderChain.fromConfiguration(conf);

        assertThat(chain.isStrict()).isTrue();
        assertThat(chain.toString()).isEqualTo("tensorrt(trt_fp16_enable=true) > cuda(device_id=1) > cpu (strict)");
    }

    @Test
    void emptyConfigurationMeansCpuOnly() {
        assertThat(ProviderChain.fromConfiguration(new Configuration())).isEqualTo(ProviderChain.cpu());
    }

    @Test
    void optionForAProviderOutsideTheChainIsAnError() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("chain", "cuda > cpu");
        m.put("tensorrt.trt_fp16_enable", "true");
        assertThatThrownBy(() -> ProviderChain.fromMap(m))
                .hasMessage("Option 'tensorrt.trt_fp16_enable' is set for execution provider tensorrt, which is not in"
                        + " the chain 'cuda > cpu'.");
    }

    @Test
    void unknownSettingIsAnError() {
        assertThatThrownBy(() -> ProviderChain.fromMap(Map.of("chian", "cuda")))
                .hasMessageContaining("Unknown provider setting 'chian'");
    }

    @Test
    void optionsFromTheMapAreValidatedLikeParsedOnes() {
        assertThatThrownBy(() -> ProviderChain.fromMap(Map.of("chain", "cuda", "cuda.device_id", "zero")))
                .hasMessage("Option cuda.device_id must be an integer, got 'zero'.");
    }
}
