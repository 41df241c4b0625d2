package io.flinkonnx.providers;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtException.OrtErrorCode;
import ai.onnxruntime.OrtSession;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.apache.flink.annotation.PublicEvolving;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates an ORT session along a {@link ProviderChain}: the one place where execution-provider fallback
 * happens.
 *
 * <ol>
 *   <li>EPs are added in chain order ({@link SessionOptionsFactory}); one whose {@code add*} call throws
 *       is skipped, its ORT error code and message recorded.
 *   <li>The session is created. If creation fails while an accelerator (any EP but CPU) is registered and
 *       ORT's error code is one an EP's failure is reported with ({@link #PROVIDER_FAILURE_CODES}), the
 *       first registered accelerator is recorded as skipped with that code and message and creation is
 *       retried without it, down to CPU alone. The decision reads ORT's code and which EPs were
 *       registered, never the message text.
 *   <li>A failure with only CPU registered, or with a code that names the model file or graph
 *       ({@code ORT_NO_SUCHFILE}, {@code ORT_INVALID_PROTOBUF}, {@code ORT_INVALID_GRAPH}, ...), is the
 *       model's: it is thrown as a {@link SessionCreationException} with ORT's code and message, without
 *       a retry.
 * </ol>
 *
 * <p>A {@linkplain ProviderChain#strict() strict} chain never falls back: an EP that cannot be added throws
 * {@link ProviderUnavailableException}, and a creation failure is thrown as is. Every native object made
 * here (options, provider options, a session when something fails after it) is closed on every path.
 *
 * <pre>{@code
 * ProviderChain chain = ProviderChain.parse("cuda(device_id=0) > cpu");
 * try (ResolvedSession created = SessionFactory.create(env, "/models/mlp.onnx", chain, SessionSettings.defaults(),
 *         options -> options.enableProfiling("/tmp/profile"))) {
 *     OrtSession session = created.session();
 *     log.info("providers: {}", created.resolution()); // e.g. "cuda: skipped (ORT_EP_FAIL: ...); cpu: registered"
 * }
 * }</pre>
 */
@PublicEvolving
public final class SessionFactory {
    private static final Logger LOG = LoggerFactory.getLogger(SessionFactory.class);

    /**
     * ORT error codes that a session-creation failure is attributed to the first registered accelerator
     * with. {@code ORT_EP_FAIL} is an EP's own failure. ORT reports an exception thrown while it creates
     * EPs and assigns and compiles their partitions (a CUDA call failing for want of a device or a matching
     * driver, a TensorRT engine that cannot be built) as {@code ORT_FAIL}, or {@code ORT_NOT_IMPLEMENTED}
     * for a kernel an EP claimed but lacks, and as {@code ORT_RUNTIME_EXCEPTION} when it escapes through
     * the C API; {@code ORT_ENGINE_ERROR} and {@code ORT_MODEL_REQUIRES_COMPILATION} concern the
     * executing EP. These codes are also what some model failures carry (opset too new is
     * {@code ORT_FAIL}): then the retry with CPU alone fails as well, and that failure is the one thrown.
     * Codes not listed name the model or the call ({@code ORT_NO_SUCHFILE}, {@code ORT_NO_MODEL},
     * {@code ORT_INVALID_PROTOBUF}, {@code ORT_INVALID_GRAPH}, {@code ORT_INVALID_ARGUMENT},
     * {@code ORT_MODEL_LOADED}, {@code ORT_MODEL_LOAD_CANCELED}, {@code ORT_NOT_FOUND}) and are never
     * retried.
     */
    public static final Set<OrtErrorCode> PROVIDER_FAILURE_CODES = Collections.unmodifiableSet(EnumSet.of(
            OrtErrorCode.ORT_EP_FAIL,
            OrtErrorCode.ORT_FAIL,
            OrtErrorCode.ORT_NOT_IMPLEMENTED,
            OrtErrorCode.ORT_RUNTIME_EXCEPTION,
            OrtErrorCode.ORT_ENGINE_ERROR,
            OrtErrorCode.ORT_MODEL_REQUIRES_COMPILATION));

    /** Changes the options of each creation attempt after the EPs are added (profiling, config entries). */
    @FunctionalInterface
    public interface OptionsCustomizer {
        /** Called once per attempt, on options the factory owns and closes. */
        void customize(OrtSession.SessionOptions options) throws OrtException;
    }

    /** Builds one attempt's options (a seam for tests; production uses {@link SessionOptionsFactory}). */
    @FunctionalInterface
    interface OptionsBuilder {
        ConfiguredSessionOptions build(ProviderChain chain, SessionSettings settings) throws OrtException;
    }

    /** Creates the session of one attempt (a seam for tests). */
    @FunctionalInterface
    interface Creator {
        OrtSession create(ConfiguredSessionOptions configured) throws OrtException;
    }

    private SessionFactory() {}

    /** {@link #create(OrtEnvironment, String, ProviderChain, SessionSettings, OptionsCustomizer)} without a customizer. */
    public static ResolvedSession create(
            OrtEnvironment env, String modelPath, ProviderChain chain, SessionSettings settings) throws OrtException {
        return create(env, modelPath, chain, settings, null);
    }

    /**
     * Creates a session of the model at {@code modelPath}, falling back along the chain as described above.
     * The caller closes the result.
     *
     * @param extraOptions applied to every attempt's options after the EPs are added; may be null
     * @throws ProviderUnavailableException a strict chain's EP (or CPU) could not be added
     * @throws SessionCreationException ORT could not create the session with what was left of the chain
     * @throws OrtException the session options themselves could not be built or customized
     */
    public static ResolvedSession create(
            OrtEnvironment env,
            String modelPath,
            ProviderChain chain,
            SessionSettings settings,
            OptionsCustomizer extraOptions)
            throws OrtException {
        Objects.requireNonNull(env, "env");
        Objects.requireNonNull(modelPath, "modelPath");
        return create(
                chain,
                settings,
                extraOptions,
                SessionOptionsFactory::create,
                configured -> env.createSession(modelPath, configured.options()));
    }

    static ResolvedSession create(
            ProviderChain chain,
            SessionSettings settings,
            OptionsCustomizer extraOptions,
            OptionsBuilder builder,
            Creator creator)
            throws OrtException {
        Objects.requireNonNull(chain, "chain");
        Objects.requireNonNull(settings, "settings");
        ProviderChain attempt = chain;
        ProviderResolution resolution = null;
        List<OrtException> providerFailures = new ArrayList<>();
        while (true) {
            try (ConfiguredSessionOptions configured = builder.build(attempt, settings)) {
                resolution =
                        resolution == null ? configured.resolution() : resolution.updatedBy(configured.resolution());
                if (extraOptions != null) {
                    extraOptions.customize(configured.options());
                }
                OrtSession session;
                try {
                    session = creator.create(configured);
                } catch (OrtException e) {
                    ExecutionProvider blamed = chain.isStrict() ? null : blamedProvider(e, configured.resolution());
                    if (blamed == null) {
                        SessionCreationException failure = new SessionCreationException(e, resolution);
                        providerFailures.forEach(failure::addSuppressed);
                        throw failure;
                    }
                    String code = e.getCode().name();
                    String message = firstLine(SessionOptionsFactory.stripPrefix(e.getMessage()));
                    LOG.warn(
                            "Session creation failed with execution provider {} registered ({}: {}); retrying"
                                    + " without it",
                            blamed.id(),
                            code,
                            message);
                    resolution = resolution.withSkipped(blamed, code, message);
                    providerFailures.add(e);
                    attempt = without(attempt, blamed);
                    continue;
                }
                try {
                    return new ResolvedSession(session, resolution);
                } catch (Throwable t) {
                    try {
                        session.close();
                    } catch (Throwable c) {
                        t.addSuppressed(c);
                    }
                    throw t;
                }
            }
        }
    }

    /**
     * The EP that a session-creation failure is attributed to, or null when it is the model's failure:
     * the first registered EP other than CPU when ORT's code is one of {@link #PROVIDER_FAILURE_CODES};
     * null when only CPU was registered or for any other code. Reads no message text.
     */
    static ExecutionProvider blamedProvider(OrtException failure, ProviderResolution registered) {
        if (failure.getCode() == null || !PROVIDER_FAILURE_CODES.contains(failure.getCode())) {
            return null;
        }
        return registered.registered().stream()
                .filter(p -> p != ExecutionProvider.CPU)
                .findFirst()
                .orElse(null);
    }

    private static ProviderChain without(ProviderChain chain, ExecutionProvider provider) {
        return ProviderChain.of(
                chain.providers().stream().filter(s -> s.provider() != provider).toArray(ProviderSpec[]::new));
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
