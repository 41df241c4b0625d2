package io.flinkonnx.providers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Against the real ONNX Runtime on the test class path. On the CPU-only Maven build the accelerators are
 * missing, which is exactly the fallback path; where an accelerator exists (onnxruntime_gpu on a GPU
 * machine) the assertions that depend on its absence are not made.
 */
class SessionOptionsFactoryTest {
    private static boolean cudaAvailable;

    @BeforeAll
    static void probe() {
        cudaAvailable = OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA);
    }

    @Test
    void cpuOnlyChainRegistersCpu() throws Exception {
        try (ConfiguredSessionOptions o =
                SessionOptionsFactory.create(ProviderChain.cpu(), SessionSettings.defaults())) {
            assertThat(o.resolution().registered()).containsExactly(ExecutionProvider.CPU);
            assertThat(o.resolution().skipped()).isEmpty();
            assertThat(o.resolution().fellBack()).isFalse();
        }
    }

    @Test
    void askingForOnnxRuntimeExtensionsWithoutTheirJarFailsNamingTheArtifact() {
        // This module's test class path deliberately lacks onnxruntime-extensions (the operator's tests have it).
        SessionSettings settings =
                SessionSettings.builder().onnxRuntimeExtensions(true).build();
        assertThatThrownBy(() -> SessionOptionsFactory.create(ProviderChain.cpu(), settings))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("com.microsoft.onnxruntime:onnxruntime-extensions:0.13.0 is not on the classpath")
                .hasMessageContaining("add it as a dependency of the job");
    }

    @Test
    void missingAcceleratorsAreSkippedWithOrtCodeAndMessageAndCpuIsLast() throws Exception {
        ProviderChain chain =
                ProviderChain.parse("tensorrt(device_id=0,trt_fp16_enable=true) > cuda(device_id=0) > cpu");
        try (ConfiguredSessionOptions o = SessionOptionsFactory.create(chain, SessionSettings.defaults())) {
            ProviderResolution r = o.resolution();
            assertThat(r.attempts()).hasSize(3);
            assertThat(r.registered()).last().isEqualTo(ExecutionProvider.CPU);
            if (!cudaAvailable) {
                assertThat(r.registered()).containsExactly(ExecutionProvider.CPU);
                assertThat(r.skipped())
                        .extracting(ProviderResolution.Attempt::provider)
                        .containsExactly(ExecutionProvider.TENSORRT, ExecutionProvider.CUDA);
                assertThat(r.skipped())
                        .extracting(ProviderResolution.Attempt::errorCode)
                        .containsOnly("ORT_EP_FAIL");
                assertThat(r.skipped().get(1).message()).isEqualTo("Failed to find CUDA shared provider");
                assertThat(r.fellBack()).isTrue();
                assertThat(r.effective()).isEqualTo(ExecutionProvider.CPU);
            }
        }
    }

    @Test
    void providersNotCompiledInAreSkippedWithInvalidArgument() throws Exception {
        ProviderChain chain = ProviderChain.parse("coreml > directml > cpu");
        try (ConfiguredSessionOptions o = SessionOptionsFactory.create(chain, SessionSettings.defaults())) {
            assertThat(o.resolution().skipped())
                    .extracting(ProviderResolution.Attempt::errorCode)
                    .containsOnly("ORT_INVALID_ARGUMENT");
            assertThat(o.resolution().skipped().get(0).message()).contains("not compiled with CoreML support");
        }
    }

    @Test
    void armNnIsSkippedWithItsReasonOnEveryOrtVersionWhetherItsApiExistsOrNot() throws Exception {
        ProviderChain chain = ProviderChain.parse("armnn > cpu");
        try (ConfiguredSessionOptions o = SessionOptionsFactory.create(chain, SessionSettings.defaults())) {
            assertThat(o.resolution().skipped()).hasSize(1);
            String version =
                    ai.onnxruntime.OrtSession.SessionOptions.class.getPackage().getImplementationVersion();
            boolean apiGone = java.util.Arrays.stream(ai.onnxruntime.OrtSession.SessionOptions.class.getMethods())
                    .noneMatch(m -> m.getName().equals("addArmNN"));
            if (apiGone) {
                // ORT 1.29 removed the EP and addArmNN: reported, not a NoSuchMethodError
                assertThat(o.resolution().skipped().get(0).errorCode()).isEqualTo("ORT_NOT_IMPLEMENTED");
                assertThat(o.resolution().skipped().get(0).message())
                        .isEqualTo("Arm NN is not in ONNX Runtime " + version
                                + " (removed in 1.29; use acl or xnnpack on Arm, or ONNX Runtime 1.24)");
            } else {
                assertThat(o.resolution().skipped().get(0).message()).contains("ArmNN");
            }
        }
    }

    @Test
    void strictChainFailsNamingTheProviderTheCodeAndTheFix() {
        if (cudaAvailable) {
            return; // CUDA is there: nothing to fail on this machine
        }
        ProviderChain chain = ProviderChain.parse("cuda(device_id=0) > cpu").strict();
        assertThatThrownBy(() -> SessionOptionsFactory.create(chain, SessionSettings.defaults()))
                .isInstanceOf(ProviderUnavailableException.class)
                .hasMessageStartingWith("Execution provider cuda could not be added (ORT_EP_FAIL: Failed to find CUDA"
                        + " shared provider) and the chain 'cuda(device_id=0) > cpu (strict)' is strict.")
                .hasMessageContaining("onnxruntime_gpu")
                .satisfies(e -> assertThat(
                                ((ProviderUnavailableException) e).resolution().skipped())
                        .hasSize(1));
    }

    @Test
    void appliesSessionSettingsAndConfigEntries() throws Exception {
        SessionSettings settings = SessionSettings.builder()
                .intraOpThreads(2)
                .configEntry("session.disable_cpu_ep_fallback", "0")
                .saveOptimizedModel("/tmp/never-written.ort", SessionSettings.ModelFileFormat.ORT)
                .build();
        try (ConfiguredSessionOptions o = SessionOptionsFactory.create(ProviderChain.cpu(), settings)) {
            assertThat(o.options().getConfigEntries())
                    .containsEntry("session.disable_cpu_ep_fallback", "0")
                    .containsEntry("session.save_model_format", "ORT");
        }
    }

    @Test
    void stripsOrtsMessagePrefix() {
        assertThat(SessionOptionsFactory.stripPrefix("Error code - ORT_EP_FAIL - message: Failed to find X"))
                .isEqualTo("Failed to find X");
    }
}
