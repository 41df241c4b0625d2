package io.flinkonnx.flink.session;

import ai.onnxruntime.MapInfo;
import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.SequenceInfo;
import ai.onnxruntime.TensorInfo;
import ai.onnxruntime.ValueInfo;
import io.flinkonnx.flink.placement.PlacementProbe;
import io.flinkonnx.flink.tensor.ElementCodec;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelFormat;
import io.flinkonnx.model.ModelLoadException;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.RuntimeLimits;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.CustomOpLibraries;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.ResolvedSession;
import io.flinkonnx.providers.SessionCreationException;
import io.flinkonnx.providers.SessionFactory;
import io.flinkonnx.providers.SessionSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.annotation.Internal;

/**
 * Creates the ORT session of a fetched model: limits check, creation along the EP chain (fallback is
 * {@link SessionFactory}'s), signature, placement probe.
 */
@Internal
public final class SessionLoader {

    private SessionLoader() {}

    /**
     * The slot's session for {@code source}. A pinned model's key is known before fetching, so only the
     * first user of the slot fetches it (one download per slot, not per operator); an unpinned model is
     * fetched to learn its digest, since the bytes behind a URI may change.
     */
    public static SharedSession acquire(
            ModelSource source, String slot, ProviderChain providers, SessionSettings settings) throws Exception {
        if (source.sha256().isPresent()) {
            SessionRegistry.Key key =
                    new SessionRegistry.Key(slot, source.sha256().get(), providers, settings);
            return SessionRegistry.INSTANCE.acquire(key, k -> {
                try (LocalModel model = source.fetch()) {
                    return load(k, model, providers, settings);
                }
            });
        }
        try (LocalModel model = source.fetch()) {
            SessionRegistry.Key key = new SessionRegistry.Key(slot, model.sha256(), providers, settings);
            return SessionRegistry.INSTANCE.acquire(key, k -> load(k, model, providers, settings));
        }
    }

    /**
     * Creates the session of {@code model} and runs its warm-up, measuring what that costs the process's
     * resident memory ({@link ResidentMemory}; learnt once per model and settings).
     */
    public static SharedSession load(
            SessionRegistry.Key key, LocalModel model, ProviderChain chain, SessionSettings settings)
            throws OrtException, IOException {
        ResidentMemory.Measured<SharedSession> measured;
        try {
            measured = ResidentMemory.measure(
                    model.sha256() + " " + chain + " " + settings, () -> create(key, model, chain, settings));
        } catch (OrtException | IOException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        measured.value.measuredResidentBytes(measured.bytes);
        return measured.value;
    }

    private static SharedSession create(
            SessionRegistry.Key key, LocalModel model, ProviderChain chain, SessionSettings settings)
            throws OrtException, IOException {
        long start = System.nanoTime();
        RuntimeLimits limits = OrtRuntime.limits();
        if (limits != null) {
            model.checkRuntimeLimits(limits);
        }
        if (settings.onnxRuntimeExtensions()) {
            try {
                CustomOpLibraries.onnxRuntimeExtensions(); // before any native object: a message naming the jar
            } catch (IllegalStateException e) {
                throw new ModelLoadException(
                        "Model " + model.source().uri() + " cannot be loaded: " + e.getMessage(), e);
            }
        }
        Path profileDir = Files.createTempDirectory("flink-onnx-profile-");
        boolean profilePending = false;
        try {
            SessionSettings.ThreadPool pool = settings.threadPool();
            // GLOBAL fails here, naming the property, when the environment exists without a pool
            OrtEnvironment env =
                    pool == SessionSettings.ThreadPool.GLOBAL ? OrtRuntime.envWithGlobalPool() : OrtRuntime.env();
            boolean globalPool = pool == SessionSettings.ThreadPool.GLOBAL
                    || (pool == SessionSettings.ThreadPool.AUTO && OrtRuntime.globalPoolThreads() > 0);
            ResolvedSession created;
            try {
                // Profile the warm-up run only: it tells where every kernel of the optimized graph runs.
                created = SessionFactory.create(env, model.path().toString(), chain, settings, options -> {
                    if (globalPool) {
                        options.disablePerSessionThreads();
                    }
                    options.enableProfiling(profileDir.resolve("ort").toString());
                });
            } catch (SessionCreationException e) {
                throw new ModelLoadException(
                        "ONNX Runtime " + OrtRuntime.version() + " could not load model "
                                + model.source().uri() + " (" + model.path() + "): " + e.getCode() + ": "
                                + firstLine(e.getMessage()) + customOpAdvice(e.getMessage(), settings),
                        e);
            }
            OrtSession session = created.session();
            try {
                ModelSignature signature =
                        model.format() == ModelFormat.ORT || model.signature().isEmpty()
                                ? signatureFromSession(session)
                                : model.signature().get();
                PlacementProbe.Placement placement = PlacementProbe.measure(session, signature, true);
                profilePending = placement.pending;
                long millis = (System.nanoTime() - start) / 1_000_000;
                return new SharedSession(
                        key,
                        session,
                        signature,
                        created.resolution(),
                        millis,
                        model.sizeBytes(),
                        placement.nodes,
                        placement.note,
                        placement.pending ? profileDir : null);
            } catch (Throwable e) {
                // Errors too (an OutOfMemoryError while warming up): a session left open here is ~50 MB of
                // native memory that nothing can close later.
                closeQuietly(session, e);
                throw e;
            }
        } finally {
            if (!profilePending) {
                deleteRecursively(profileDir);
            }
        }
    }

    /** ORT's words for an operator no registered kernel or custom-op library provides: {@code domain:Op(version)}. */
    private static final Pattern UNKNOWN_OP =
            Pattern.compile("([A-Za-z0-9_.]*):([A-Za-z0-9_]+)\\(-?\\d+\\) is not a registered function/op");

    /**
     * What to do about a model whose operator ORT does not know, or "": a custom domain's operator without the
     * ONNX Runtime Extensions asks for them; with them, says that they lack it too.
     */
    static String customOpAdvice(String ortMessage, SessionSettings settings) {
        Matcher m = UNKNOWN_OP.matcher(ortMessage == null ? "" : ortMessage);
        if (!m.find()) {
            return "";
        }
        String domain = m.group(1);
        String op = (domain.isEmpty() ? "" : domain + ":") + m.group(2);
        if (domain.isEmpty() || domain.equals("ai.onnx") || domain.equals("ai.onnx.ml")) {
            return ". Operator " + op + " is a standard ONNX operator this ONNX Runtime does not implement at the"
                    + " model's opset";
        }
        if (!settings.onnxRuntimeExtensions()) {
            return ". The model uses custom operator " + op + " (domain '" + domain + "'), which plain ONNX Runtime"
                    + " does not have: enable the ONNX Runtime Extensions (SessionSettings.builder()"
                    + ".onnxRuntimeExtensions(true), or 'extensions' = 'true' in SQL) with "
                    + CustomOpLibraries.ONNXRUNTIME_EXTENSIONS_ARTIFACT + " on the classpath, or register the"
                    + " library that implements it";
        }
        return ". The model uses custom operator " + op + " (domain '" + domain + "'), which the ONNX Runtime"
                + " Extensions (" + CustomOpLibraries.ONNXRUNTIME_EXTENSIONS_ARTIFACT + ") do not have either";
    }

    /**
     * Why a synthetic warm-up run must not be tried, or null (kept here for the model checks; the rule is
     * {@link PlacementProbe#unsafeToRun}).
     */
    public static String unsafeToRun(ModelSignature signature) {
        return PlacementProbe.unsafeToRun(signature);
    }

    private static void closeQuietly(OrtSession session, Throwable failure) {
        try {
            session.close();
        } catch (Throwable t) {
            failure.addSuppressed(t);
        }
    }

    static void deleteRecursively(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a leftover empty temp folder is harmless
        }
    }

    /** The signature of a model that carries none of its own (ORT format), from a short-lived CPU session. */
    public static ModelSignature signatureOf(LocalModel model) {
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
                OrtSession session = OrtRuntime.env().createSession(model.path().toString(), options)) {
            return signatureFromSession(session);
        } catch (OrtException e) {
            throw new ModelLoadException(
                    "ONNX Runtime could not load model " + model.source().uri() + ": " + e.getMessage(), e);
        }
    }

    /** The signature of a session (the only source for {@code .ort} files); -1 dims become symbolic/unknown. */
    public static ModelSignature signatureFromSession(OrtSession session) throws OrtException {
        return new ModelSignature(
                ModelFormat.ORT, 0, Map.of(), "", "", specs(session.getInputInfo()), specs(session.getOutputInfo()));
    }

    private static List<TensorSpec> specs(Map<String, NodeInfo> infos) {
        List<TensorSpec> specs = new ArrayList<>();
        for (NodeInfo node : infos.values()) {
            ValueInfo info = node.getInfo();
            if (!(info instanceof TensorInfo)) {
                specs.add(new TensorSpec(
                        node.getName(),
                        kindOf(info),
                        ElementType.UNDEFINED,
                        List.of(),
                        false,
                        TensorSpec.NO_BATCH_AXIS));
                continue;
            }
            TensorInfo t = (TensorInfo) info;
            long[] shape = t.getShape();
            String[] names = t.getDimensionNames();
            List<Dim> dims = new ArrayList<>();
            for (int i = 0; i < shape.length; i++) {
                if (shape[i] >= 0) {
                    dims.add(Dim.fixed(shape[i]));
                } else {
                    dims.add(names != null && i < names.length ? Dim.symbolic(names[i]) : Dim.unknown());
                }
            }
            specs.add(TensorSpec.tensor(node.getName(), ElementCodec.elementTypeOf(t), dims));
        }
        return specs;
    }

    private static TensorSpec.Kind kindOf(ValueInfo info) {
        if (info instanceof SequenceInfo) {
            return TensorSpec.Kind.SEQUENCE;
        }
        if (info instanceof MapInfo) {
            return TensorSpec.Kind.MAP;
        }
        return TensorSpec.Kind.UNKNOWN;
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
