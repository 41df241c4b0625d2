package io.flinkonnx.providers;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession.SessionOptions;
import ai.onnxruntime.providers.NNAPIFlags;
import ai.onnxruntime.providers.OrtCUDAProviderOptions;
import ai.onnxruntime.providers.OrtTensorRTProviderOptions;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.annotation.PublicEvolving;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds ORT session options from {@link SessionSettings} and a {@link ProviderChain}, adding EPs in
 * chain order. An EP whose {@code add*} call throws (not compiled into this ORT build, shared library or
 * device missing) is skipped and its {@code OrtException} code and message are recorded; in strict mode
 * the first such failure throws {@link ProviderUnavailableException} instead. Every native object made
 * here is closed on failure. This covers registration only: {@link SessionFactory} also falls back when an
 * EP that registered fails session creation, and is what a caller that wants a session should use.
 *
 * <pre>{@code
 * try (ConfiguredSessionOptions configured = SessionOptionsFactory.create(chain, settings);
 *      OrtSession session = env.createSession(path, configured.options())) {
 *     log.info("providers: {}", configured.resolution());
 * }
 * }</pre>
 */
@PublicEvolving
public final class SessionOptionsFactory {
    private static final Logger LOG = LoggerFactory.getLogger(SessionOptionsFactory.class);

    private SessionOptionsFactory() {}

    /** Builds the options; the caller closes the result. */
    public static ConfiguredSessionOptions create(ProviderChain chain, SessionSettings settings) throws OrtException {
        SessionOptions options = new SessionOptions();
        List<AutoCloseable> providerOptions = new ArrayList<>();
        try {
            applySettings(options, settings);
            List<ProviderResolution.Attempt> attempts = new ArrayList<>();
            for (ProviderSpec spec : chain.providers()) {
                try {
                    addProvider(options, spec, settings, providerOptions);
                    attempts.add(new ProviderResolution.Attempt(spec, true, null, null));
                } catch (OrtException e) {
                    String code = e.getCode() == null ? "ORT_FAIL" : e.getCode().name();
                    String message = stripPrefix(e.getMessage());
                    attempts.add(new ProviderResolution.Attempt(spec, false, code, message));
                    ProviderResolution sofar = new ProviderResolution(chain, attempts);
                    if (chain.isStrict() || spec.provider() == ExecutionProvider.CPU) {
                        throw new ProviderUnavailableException(
                                "Execution provider " + spec.provider().id()
                                        + " could not be added (" + code + ": " + message + ")"
                                        + (chain.isStrict() ? " and the chain '" + chain + "' is strict" : "")
                                        + ". Providers in this ONNX Runtime build: "
                                        + OrtEnvironment.getAvailableProviders()
                                        + ". Use an ONNX Runtime build with that provider (e.g. onnxruntime_gpu for CUDA and"
                                        + " TensorRT), run on a machine that has its device, or drop strict mode to fall"
                                        + " back.",
                                sofar);
                    }
                    LOG.warn("Execution provider {} skipped: {}: {}", spec, code, message);
                }
            }
            return new ConfiguredSessionOptions(options, providerOptions, new ProviderResolution(chain, attempts));
        } catch (OrtException | RuntimeException e) {
            closeAll(providerOptions, options);
            throw e;
        }
    }

    private static void applySettings(SessionOptions options, SessionSettings s) throws OrtException {
        options.setOptimizationLevel(optLevel(s.optimizationLevel()));
        options.setIntraOpNumThreads(s.intraOpThreads());
        options.setInterOpNumThreads(s.interOpThreads());
        options.setCPUArenaAllocator(s.cpuMemoryArena());
        options.setMemoryPatternOptimization(s.memoryPatternOptimization());
        options.setExecutionMode(
                s.executionMode() == SessionSettings.ExecutionMode.PARALLEL
                        ? SessionOptions.ExecutionMode.PARALLEL
                        : SessionOptions.ExecutionMode.SEQUENTIAL);
        for (Map.Entry<String, String> e : s.configEntries().entrySet()) {
            options.addConfigEntry(e.getKey(), e.getValue());
        }
        if (s.onnxRuntimeExtensions()) {
            // Closing the options drops ORT's handle on the library; the extensions' jar keeps it loaded (System.load).
            options.registerCustomOpLibrary(CustomOpLibraries.onnxRuntimeExtensions());
        }
        if (s.optimizedModelPath() != null) {
            options.setOptimizedModelFilePath(s.optimizedModelPath());
            if (s.optimizedModelFormat() == SessionSettings.ModelFileFormat.ORT) {
                options.addConfigEntry("session.save_model_format", "ORT");
            }
        }
    }

    private static SessionOptions.OptLevel optLevel(SessionSettings.OptimizationLevel level) {
        switch (level) {
            case DISABLE_ALL:
                return SessionOptions.OptLevel.NO_OPT;
            case BASIC:
                return SessionOptions.OptLevel.BASIC_OPT;
            case EXTENDED:
                return SessionOptions.OptLevel.EXTENDED_OPT;
            default:
                return SessionOptions.OptLevel.ALL_OPT;
        }
    }

    private static void addProvider(
            SessionOptions options, ProviderSpec spec, SessionSettings settings, List<AutoCloseable> owned)
            throws OrtException {
        switch (spec.provider()) {
            case CPU:
                options.addCPU(spec.flag("use_arena", settings.cpuMemoryArena()));
                break;
            case CUDA: {
                OrtCUDAProviderOptions cuda = new OrtCUDAProviderOptions(spec.integer("device_id", 0));
                owned.add(cuda);
                for (Map.Entry<String, String> e : spec.options().entrySet()) {
                    cuda.add(e.getKey(), e.getValue());
                }
                options.addCUDA(cuda);
                break;
            }
            case TENSORRT: {
                OrtTensorRTProviderOptions trt = new OrtTensorRTProviderOptions(spec.integer("device_id", 0));
                owned.add(trt);
                for (Map.Entry<String, String> e : spec.options().entrySet()) {
                    trt.add(e.getKey(), e.getValue());
                }
                options.addTensorrt(trt);
                break;
            }
            case ROCM:
                options.addROCM(spec.integer("device_id", 0));
                break;
            case DNNL:
                options.addDnnl(spec.flag("use_arena", true));
                break;
            case OPENVINO:
                options.addOpenVINO(spec.options().getOrDefault("device_type", ""));
                break;
            case COREML:
                if (spec.options().isEmpty()) {
                    options.addCoreML();
                } else {
                    options.addCoreML(new LinkedHashMap<>(spec.options()));
                }
                break;
            case NNAPI: {
                EnumSet<NNAPIFlags> flags = EnumSet.noneOf(NNAPIFlags.class);
                if (spec.flag("use_fp16", false)) {
                    flags.add(NNAPIFlags.USE_FP16);
                }
                if (spec.flag("use_nchw", false)) {
                    flags.add(NNAPIFlags.USE_NCHW);
                }
                if (spec.flag("cpu_disabled", false)) {
                    flags.add(NNAPIFlags.CPU_DISABLED);
                }
                if (spec.flag("cpu_only", false)) {
                    flags.add(NNAPIFlags.CPU_ONLY);
                }
                options.addNnapi(flags);
                break;
            }
            case QNN:
                options.addQnn(new LinkedHashMap<>(spec.options()));
                break;
            case XNNPACK:
                options.addXnnpack(new LinkedHashMap<>(spec.options()));
                break;
            case ACL:
                options.addACL(spec.flag("enable_fast_math", false));
                break;
            case ARMNN:
                addArmNN(options, spec.flag("use_arena", true));
                break;
            case DIRECTML:
                options.addDirectML(spec.integer("device_id", 0));
                break;
            default:
                throw new IllegalStateException("No way to add " + spec.provider());
        }
    }

    /**
     * ORT 1.29 removed the Arm NN EP and its {@code addArmNN} from the Java API; 1.24 has both. Called by
     * reflection so the library compiles and runs against either, and reported as a skipped EP where it is
     * gone.
     */
    private static void addArmNN(SessionOptions options, boolean useArena) throws OrtException {
        java.lang.reflect.Method add;
        try {
            add = SessionOptions.class.getMethod("addArmNN", boolean.class);
        } catch (NoSuchMethodException e) {
            throw new OrtException(
                    OrtException.OrtErrorCode.ORT_NOT_IMPLEMENTED,
                    "Arm NN is not in ONNX Runtime " + ortVersion()
                            + " (removed in 1.29; use acl or xnnpack on Arm, or ONNX Runtime 1.24)");
        }
        try {
            add.invoke(options, useArena);
        } catch (java.lang.reflect.InvocationTargetException e) {
            if (e.getCause() instanceof OrtException ort) {
                throw ort;
            }
            throw new IllegalStateException("addArmNN failed", e.getCause());
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("addArmNN is not accessible", e);
        }
    }

    private static String ortVersion() {
        Package p = SessionOptions.class.getPackage();
        return p == null || p.getImplementationVersion() == null ? "(unknown version)" : p.getImplementationVersion();
    }

    /** ORT prefixes its messages with "Error code - X - message: "; the code is kept separately. */
    static String stripPrefix(String message) {
        if (message == null) {
            return "";
        }
        int i = message.indexOf("message: ");
        return (i >= 0 ? message.substring(i + "message: ".length()) : message).trim();
    }

    static void closeAll(List<AutoCloseable> providerOptions, SessionOptions options) {
        for (AutoCloseable c : providerOptions) {
            try {
                c.close();
            } catch (Exception e) {
                LOG.warn("Failed to close provider options {}", c, e);
            }
        }
        options.close();
    }
}
