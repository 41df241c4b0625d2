package io.flinkonnx.flink;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import ai.onnxruntime.ValueInfo;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelFormat;
import io.flinkonnx.model.ModelLoadException;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.RuntimeLimits;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.ConfiguredSessionOptions;
import io.flinkonnx.providers.ExecutionProvider;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.ProviderResolution;
import io.flinkonnx.providers.SessionOptionsFactory;
import io.flinkonnx.providers.SessionSettings;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Creates the ORT session of a fetched model: limits check, EP chain, creation, signature. */
final class SessionLoader {
    private static final Logger LOG = LoggerFactory.getLogger(SessionLoader.class);

    private SessionLoader() {}

    static SharedSession load(SessionRegistry.Key key, LocalModel model, ProviderChain chain, SessionSettings settings)
            throws OrtException {
        long start = System.nanoTime();
        RuntimeLimits limits = OrtRuntime.limits();
        if (limits != null) {
            model.checkRuntimeLimits(limits);
        }
        ProviderChain attempt = chain;
        ProviderResolution resolution = null;
        while (true) {
            try (ConfiguredSessionOptions configured = SessionOptionsFactory.create(attempt, settings)) {
                if (resolution == null) {
                    resolution = configured.resolution();
                }
                OrtSession session;
                try {
                    session = OrtRuntime.env().createSession(model.path().toString(), configured.options());
                } catch (OrtException e) {
                    ExecutionProvider failed = firstAccelerator(configured.resolution());
                    if (chain.isStrict() || failed == null || !looksLikeProviderFailure(e)) {
                        throw new ModelLoadException("ONNX Runtime " + OrtRuntime.version() + " could not load model "
                                + model.source().uri() + " (" + model.path() + "): " + e.getCode() + ": "
                                + firstLine(e.getMessage()), e);
                    }
                    // The EP was added but failed while the session was built (no device, driver mismatch):
                    // fall back to the rest of the chain, as for an EP that throws when added.
                    LOG.warn("Session creation for {} failed on {} ({}); retrying without it", model.source(),
                            failed.id(), firstLine(e.getMessage()));
                    resolution = resolution.withSkipped(failed, e.getCode().name(), firstLine(e.getMessage()));
                    attempt = without(attempt, failed);
                    continue;
                }
                try {
                    ModelSignature signature = model.format() == ModelFormat.ORT || model.signature().isEmpty()
                            ? signatureFromSession(session)
                            : model.signature().get();
                    long millis = (System.nanoTime() - start) / 1_000_000;
                    if (resolution.fellBack()) {
                        LOG.warn("Model {} asked for {} but runs on {}: {}", model.source(), chain.preferred().id(),
                                resolution.effective().id(), resolution.skipped());
                    }
                    return new SharedSession(key, session, signature, resolution, millis, model.sizeBytes());
                } catch (RuntimeException | OrtException e) {
                    session.close();
                    throw e;
                }
            }
        }
    }

    private static ExecutionProvider firstAccelerator(ProviderResolution resolution) {
        return resolution.registered().stream().filter(p -> p != ExecutionProvider.CPU).findFirst().orElse(null);
    }

    private static ProviderChain without(ProviderChain chain, ExecutionProvider provider) {
        return ProviderChain.of(chain.providers().stream().filter(s -> s.provider() != provider)
                .toArray(io.flinkonnx.providers.ProviderSpec[]::new));
    }

    private static boolean looksLikeProviderFailure(OrtException e) {
        String m = String.valueOf(e.getMessage());
        return e.getCode() == OrtException.OrtErrorCode.ORT_EP_FAIL || m.contains("CUDA") || m.contains("TensorRT");
    }

    /** The signature of a session (the only source for {@code .ort} files); -1 dims become symbolic/unknown. */
    static ModelSignature signatureFromSession(OrtSession session) throws OrtException {
        return new ModelSignature(ModelFormat.ORT, 0, Map.of(), "", "", specs(session.getInputInfo()),
                specs(session.getOutputInfo()));
    }

    private static List<TensorSpec> specs(Map<String, NodeInfo> infos) {
        List<TensorSpec> specs = new ArrayList<>();
        for (NodeInfo node : infos.values()) {
            ValueInfo info = node.getInfo();
            if (!(info instanceof TensorInfo)) {
                specs.add(new TensorSpec(node.getName(), kindOf(info), ElementType.UNDEFINED, List.of(), false,
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
            specs.add(TensorSpec.tensor(node.getName(), OrtRuntime.elementType(t), dims));
        }
        return specs;
    }

    private static TensorSpec.Kind kindOf(ValueInfo info) {
        if (info instanceof ai.onnxruntime.SequenceInfo) {
            return TensorSpec.Kind.SEQUENCE;
        }
        if (info instanceof ai.onnxruntime.MapInfo) {
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
