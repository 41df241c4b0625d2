package io.flinkonnx.providers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.tuple;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtException.OrtErrorCode;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Session creation along a chain. The first tests run the real ONNX Runtime of the test class path (the
 * CPU-only Maven build, where every accelerator fails when added). A CPU-only build cannot make an
 * accelerator that registers and then fails session creation, so that path is driven through the
 * factory's package-private seams: a builder that reports CUDA as registered and a creator that fails
 * with a constructed {@link OrtException} while CUDA is among the attempt's EPs.
 */
class SessionFactoryTest {
    private static OrtEnvironment env;
    private static boolean cudaAvailable;

    @TempDir
    Path dir;

    @BeforeAll
    static void setUp() {
        env = OrtEnvironment.getEnvironment();
        cudaAvailable = OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA);
    }

    private static Path relu() throws Exception {
        return Path.of(SessionFactoryTest.class.getResource("/models/relu.onnx").toURI());
    }

    @Test
    void acceleratorsMissingFromTheBuildAreSkippedAtRegistrationWithOrtCodesAndTheSessionRunsOnCpu() throws Exception {
        if (cudaAvailable) {
            return; // a GPU build registers CUDA: nothing is skipped
        }
        AtomicInteger attempts = new AtomicInteger();
        ProviderChain chain = ProviderChain.parse("tensorrt > cuda(device_id=0) > coreml > cpu");
        try (ResolvedSession created = SessionFactory.create(
                env, relu().toString(), chain, SessionSettings.defaults(), options -> attempts.incrementAndGet())) {
            assertThat(created.session().getInputNames()).containsExactly("x");
            ProviderResolution r = created.resolution();
            assertThat(r.registered()).containsExactly(ExecutionProvider.CPU);
            assertThat(r.skipped())
                    .extracting(ProviderResolution.Attempt::provider, ProviderResolution.Attempt::errorCode)
                    .containsExactly(
                            tuple(ExecutionProvider.TENSORRT, "ORT_EP_FAIL"),
                            tuple(ExecutionProvider.CUDA, "ORT_EP_FAIL"),
                            tuple(ExecutionProvider.COREML, "ORT_INVALID_ARGUMENT"));
            assertThat(r.skipped().get(1).message()).isEqualTo("Failed to find CUDA shared provider");
            assertThat(r.fellBack()).isTrue();
        }
        assertThat(attempts).hasValue(1);
    }

    @Test
    void anUnreadableModelWithOnlyCpuRegisteredFailsOnceAsTheModelsFailure() throws Exception {
        Path garbage = Files.write(dir.resolve("garbage.onnx"), "this is not a model".getBytes());
        AtomicInteger attempts = new AtomicInteger();
        ProviderChain chain = ProviderChain.parse("cuda > cpu");
        assertThatThrownBy(() -> SessionFactory.create(
                        env,
                        garbage.toString(),
                        chain,
                        SessionSettings.defaults(),
                        options -> attempts.incrementAndGet()))
                .isInstanceOfSatisfying(SessionCreationException.class, e -> {
                    assertThat(e.getCode()).isEqualTo(OrtErrorCode.ORT_INVALID_PROTOBUF);
                    assertThat(e.getMessage()).startsWith("Error code - ORT_INVALID_PROTOBUF - message: ");
                    assertThat(e.getCause()).isInstanceOf(OrtException.class);
                    assertThat(e.getSuppressed()).isEmpty();
                    assertThat(e.resolution().registered()).endsWith(ExecutionProvider.CPU);
                });
        assertThat(attempts).hasValue(1);
    }

    @Test
    void aModelCpuRefusesWithOrtFailIsNotRetriedWhenNoAcceleratorWasRegistered() throws Exception {
        if (cudaAvailable) {
            return; // CUDA registers: ORT_FAIL would be retried once on CPU, by design
        }
        // relu.onnx ends with its opset import (domain "", version 14): make it opset 99, which ORT refuses
        byte[] bytes = Files.readAllBytes(relu());
        assertThat(bytes[bytes.length - 1]).isEqualTo((byte) 14);
        bytes[bytes.length - 1] = 99;
        Path future = Files.write(dir.resolve("future.onnx"), bytes);
        AtomicInteger attempts = new AtomicInteger();
        assertThatThrownBy(() -> SessionFactory.create(
                        env,
                        future.toString(),
                        ProviderChain.parse("cuda > cpu"),
                        SessionSettings.defaults(),
                        options -> attempts.incrementAndGet()))
                .isInstanceOfSatisfying(SessionCreationException.class, e -> {
                    assertThat(e.getCode()).isEqualTo(OrtErrorCode.ORT_FAIL);
                    assertThat(e.getSuppressed()).isEmpty();
                });
        assertThat(attempts).hasValue(1);
    }

    @Test
    void aStrictChainThrowsProviderUnavailableBeforeAnySessionIsTried() throws Exception {
        if (cudaAvailable) {
            return;
        }
        AtomicInteger attempts = new AtomicInteger();
        assertThatThrownBy(() -> SessionFactory.create(
                        env,
                        relu().toString(),
                        ProviderChain.parse("cuda > cpu").strict(),
                        SessionSettings.defaults(),
                        options -> attempts.incrementAndGet()))
                .isInstanceOf(ProviderUnavailableException.class)
                .hasMessageContaining("Execution provider cuda could not be added (ORT_EP_FAIL");
        assertThat(attempts).hasValue(0);
    }

    @Test
    void anAcceleratorThatFailsCreationWithAnEpCodeIsRecordedAndTheSessionIsCreatedWithoutIt() throws Exception {
        Fakes fakes = new Fakes(OrtErrorCode.ORT_EP_FAIL, false);
        ProviderChain chain = ProviderChain.parse("cuda(device_id=0) > cpu");
        try (ResolvedSession created =
                SessionFactory.create(chain, SessionSettings.defaults(), null, fakes::build, fakes::create)) {
            assertThat(created.session().getInputNames()).containsExactly("x");
            ProviderResolution r = created.resolution();
            assertThat(r.requested()).isEqualTo(chain);
            assertThat(r.registered()).containsExactly(ExecutionProvider.CPU);
            assertThat(r.skipped())
                    .extracting(
                            ProviderResolution.Attempt::provider,
                            ProviderResolution.Attempt::errorCode,
                            ProviderResolution.Attempt::message)
                    .containsExactly(
                            tuple(ExecutionProvider.CUDA, "ORT_EP_FAIL", "no CUDA-capable device is detected"));
            assertThat(r.fellBack()).isTrue();
        }
        assertThat(fakes.chains).containsExactly("cuda(device_id=0) > cpu", "cpu");
        assertThat(fakes.closed).hasValue(2);
    }

    @Test
    void aCreationFailureWhoseCodeNamesTheModelIsNotRetriedEvenWithAnAcceleratorRegistered() {
        Fakes fakes = new Fakes(OrtErrorCode.ORT_INVALID_GRAPH, false);
        assertThatThrownBy(() -> SessionFactory.create(
                        ProviderChain.parse("cuda > cpu"),
                        SessionSettings.defaults(),
                        null,
                        fakes::build,
                        fakes::create))
                .isInstanceOfSatisfying(SessionCreationException.class, e -> assertThat(e.getCode())
                        .isEqualTo(OrtErrorCode.ORT_INVALID_GRAPH));
        assertThat(fakes.chains).containsExactly("cuda > cpu");
        assertThat(fakes.closed).hasValue(1);
    }

    @Test
    void aStrictChainNeverFallsBackAfterACreationFailure() {
        Fakes fakes = new Fakes(OrtErrorCode.ORT_EP_FAIL, false);
        assertThatThrownBy(() -> SessionFactory.create(
                        ProviderChain.parse("cuda > cpu").strict(),
                        SessionSettings.defaults(),
                        null,
                        fakes::build,
                        fakes::create))
                .isInstanceOfSatisfying(SessionCreationException.class, e -> assertThat(e.getCode())
                        .isEqualTo(OrtErrorCode.ORT_EP_FAIL));
        assertThat(fakes.chains).hasSize(1);
        assertThat(fakes.closed).hasValue(1);
    }

    @Test
    void whenCpuAloneFailsTooThatFailureIsThrownWithTheAcceleratorsAsSuppressed() {
        Fakes fakes = new Fakes(OrtErrorCode.ORT_FAIL, true);
        assertThatThrownBy(() -> SessionFactory.create(
                        ProviderChain.parse("tensorrt > cuda > cpu"),
                        SessionSettings.defaults(),
                        null,
                        fakes::build,
                        fakes::create))
                .isInstanceOfSatisfying(SessionCreationException.class, e -> {
                    assertThat(e.getMessage()).endsWith("failed on cpu");
                    assertThat(e.getSuppressed())
                            .extracting(Throwable::getMessage)
                            .containsExactly(
                                    "Error code - ORT_FAIL - message: failed on tensorrt",
                                    "Error code - ORT_FAIL - message: failed on cuda");
                    assertThat(e.resolution().skipped())
                            .extracting(ProviderResolution.Attempt::provider)
                            .containsExactly(ExecutionProvider.TENSORRT, ExecutionProvider.CUDA);
                });
        assertThat(fakes.chains).containsExactly("tensorrt > cuda > cpu", "cuda > cpu", "cpu");
        assertThat(fakes.closed).hasValue(3);
    }

    @Test
    void onlyProviderCodesWithARegisteredAcceleratorBlameIt() {
        ProviderChain chain = ProviderChain.parse("tensorrt > cuda > cpu");
        ProviderResolution trtSkippedCudaRegistered = resolution(chain, ExecutionProvider.CUDA, ExecutionProvider.CPU);
        ProviderResolution cpuOnly = resolution(chain, ExecutionProvider.CPU);
        for (OrtErrorCode code : OrtErrorCode.values()) {
            OrtException e = new OrtException(code, "CUDA failure 100: no CUDA-capable device is detected");
            assertThat(SessionFactory.blamedProvider(e, cpuOnly))
                    .as("%s with CPU alone", code)
                    .isNull();
            assertThat(SessionFactory.blamedProvider(e, trtSkippedCudaRegistered))
                    .as("%s with CUDA registered", code)
                    .isEqualTo(SessionFactory.PROVIDER_FAILURE_CODES.contains(code) ? ExecutionProvider.CUDA : null);
        }
        // the message is never read: an EP code blames the accelerator whatever the text says
        assertThat(SessionFactory.blamedProvider(
                        new OrtException(OrtErrorCode.ORT_EP_FAIL, "no provider named here"), trtSkippedCudaRegistered))
                .isEqualTo(ExecutionProvider.CUDA);
        assertThat(SessionFactory.PROVIDER_FAILURE_CODES)
                .contains(OrtErrorCode.ORT_EP_FAIL, OrtErrorCode.ORT_FAIL)
                .doesNotContain(
                        OrtErrorCode.ORT_NO_SUCHFILE,
                        OrtErrorCode.ORT_INVALID_PROTOBUF,
                        OrtErrorCode.ORT_INVALID_GRAPH,
                        OrtErrorCode.ORT_NO_MODEL);
    }

    /** A resolution of {@code chain} in which exactly {@code registered} were registered. */
    private static ProviderResolution resolution(ProviderChain chain, ExecutionProvider... registered) {
        List<ExecutionProvider> ok = List.of(registered);
        List<ProviderResolution.Attempt> attempts = new ArrayList<>();
        for (ProviderSpec spec : chain.providers()) {
            attempts.add(
                    ok.contains(spec.provider())
                            ? new ProviderResolution.Attempt(spec, true, null, null)
                            : new ProviderResolution.Attempt(spec, false, "ORT_EP_FAIL", "missing"));
        }
        return new ProviderResolution(chain, attempts);
    }

    /**
     * Options that claim every EP of the chain registered (real CPU-only session options underneath), and a
     * creator that fails with {@code code} while an accelerator is in the attempt and otherwise creates a
     * real session of relu.onnx (or fails on CPU too, when {@code cpuFails}).
     */
    private final class Fakes {
        final OrtErrorCode code;
        final boolean cpuFails;
        final List<String> chains = new ArrayList<>();
        final AtomicInteger closed = new AtomicInteger();

        Fakes(OrtErrorCode code, boolean cpuFails) {
            this.code = code;
            this.cpuFails = cpuFails;
        }

        ConfiguredSessionOptions build(ProviderChain chain, SessionSettings settings) {
            chains.add(chain.toString());
            ProviderResolution all = resolution(
                    chain,
                    chain.providers().stream().map(ProviderSpec::provider).toArray(ExecutionProvider[]::new));
            return new ConfiguredSessionOptions(new OrtSession.SessionOptions(), List.of(closed::incrementAndGet), all);
        }

        OrtSession create(ConfiguredSessionOptions configured) throws OrtException {
            List<ExecutionProvider> registered = configured.resolution().registered();
            if (registered.size() > 1) {
                String message = registered.get(0) == ExecutionProvider.CUDA && code == OrtErrorCode.ORT_EP_FAIL
                        ? "no CUDA-capable device is detected\nat cuda_call.cc:123"
                        : "failed on " + registered.get(0).id();
                throw new OrtException(code, message);
            }
            if (cpuFails) {
                throw new OrtException(code, "failed on cpu");
            }
            try {
                return env.createSession(relu().toString(), configured.options());
            } catch (OrtException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
