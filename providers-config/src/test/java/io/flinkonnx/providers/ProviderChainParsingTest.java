package io.flinkonnx.providers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.junit.jupiter.api.Test;

class ProviderChainParsingTest {

    @Test
    void parsesProvidersWithOptionsInOrder() {
        ProviderChain chain =
                ProviderChain.parse("tensorrt(device_id=0,trt_fp16_enable=true) > cuda(device_id=0) > cpu");
        assertThat(chain.providers())
                .extracting(ProviderSpec::provider)
                .containsExactly(ExecutionProvider.TENSORRT, ExecutionProvider.CUDA, ExecutionProvider.CPU);
        assertThat(chain.providers().get(0).options())
                .containsExactly(Map.entry("device_id", "0"), Map.entry("trt_fp16_enable", "true"));
        assertThat(chain.preferred()).isEqualTo(ExecutionProvider.TENSORRT);
        assertThat(chain.isStrict()).isFalse();
    }

    @Test
    void appendsCpuWhenNotWritten() {
        assertThat(ProviderChain.parse("cuda").providers())
                .extracting(ProviderSpec::provider)
                .containsExactly(ExecutionProvider.CUDA, ExecutionProvider.CPU);
        assertThat(ProviderChain.cpu().providers())
                .extracting(ProviderSpec::provider)
                .containsExactly(ExecutionProvider.CPU);
    }

    @Test
    void toleratesSpacesCaseAndAliases() {
        ProviderChain chain = ProviderChain.parse("  TRT ( device_id = 1 ) >DML>  CPU ");
        assertThat(chain.toString()).isEqualTo("tensorrt(device_id=1) > directml > cpu");
    }

    @Test
    void quotedValuesMayHoldCommasAndParentheses() {
        ProviderChain chain = ProviderChain.parse("openvino(device_type=\"AUTO:GPU,CPU\") > cpu");
        assertThat(chain.providers().get(0).options()).containsEntry("device_type", "AUTO:GPU,CPU");
        assertThat(ProviderChain.parse(chain.toString())).isEqualTo(chain);
    }

    @Test
    void everyProviderOfTheOrtJavaApiIsAccepted() {
        for (ExecutionProvider ep : ExecutionProvider.values()) {
            assertThat(ProviderChain.parse(ep.id()).providers().get(0).provider())
                    .isEqualTo(ep);
        }
    }

    @Test
    void textFormRoundTrips() {
        String text =
                "tensorrt(device_id=0,trt_fp16_enable=true,trt_engine_cache_path=/tmp/trt) > cuda(device_id=0) > cpu";
        assertThat(ProviderChain.parse(text).toString()).isEqualTo(text);
    }

    @Test
    void unknownProviderFailsListingTheValidOnes() {
        assertThatThrownBy(() -> ProviderChain.parse("cuda > tpu > cpu"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("Unknown execution provider 'tpu'. Valid ones: cpu, cuda, tensorrt, rocm, dnnl, openvino,"
                        + " coreml, nnapi, qnn, xnnpack, acl, armnn, directml (aliases: trt, dml, onednn).");
    }

    @Test
    void unknownOptionFailsListingTheValidOnes() {
        assertThatThrownBy(() -> ProviderChain.parse("cuda(devce_id=0)"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("Unknown option 'devce_id' for execution provider cuda. Valid options: ")
                .hasMessageContaining("device_id, do_copy_in_default_stream");
    }

    @Test
    void badOptionValuesFailSayingWhatIsAllowed() {
        assertThatThrownBy(() -> ProviderChain.parse("cuda(device_id=first)"))
                .hasMessage("Option cuda.device_id must be an integer, got 'first'.");
        assertThatThrownBy(() -> ProviderChain.parse("tensorrt(trt_fp16_enable=yes)"))
                .hasMessage("Option tensorrt.trt_fp16_enable must be true/false (or 1/0), got 'yes'.");
    }

    @Test
    void cpuAnywhereButLastIsRefused() {
        assertThatThrownBy(() -> ProviderChain.parse("cpu > cuda"))
                .hasMessageContaining("cpu must be the last execution provider");
    }

    @Test
    void duplicateProviderIsRefused() {
        assertThatThrownBy(() -> ProviderChain.parse("cuda > cuda(device_id=1)"))
                .hasMessageContaining("cuda appears twice");
    }

    @Test
    void syntaxErrorsSayWhereAndWhatWasExpected() {
        assertThatThrownBy(() -> ProviderChain.parse("cuda(device_id=0 > cpu")).hasMessageContaining("expected ')'");
        assertThatThrownBy(() -> ProviderChain.parse("cuda >> cpu"))
                .hasMessageContaining("expected an execution provider name")
                .hasMessageContaining("position 6");
        assertThatThrownBy(() -> ProviderChain.parse("")).hasMessageContaining("expected an execution provider name");
    }

    @Test
    void strictIsKeptAndShown() {
        ProviderChain strict = ProviderChain.parse("cuda > cpu").strict();
        assertThat(strict.isStrict()).isTrue();
        assertThat(strict.toString()).isEqualTo("cuda > cpu (strict)");
    }
}
