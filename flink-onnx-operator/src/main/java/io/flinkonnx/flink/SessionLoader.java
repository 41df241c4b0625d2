package io.flinkonnx.flink;

import org.apache.flink.annotation.Internal;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.tensor.TensorPacker;
import io.flinkonnx.flink.tensor.Padding;
import io.flinkonnx.flink.placement.ProfileTraceParser;
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
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.ResolvedSession;
import io.flinkonnx.providers.SessionCreationException;
import io.flinkonnx.providers.SessionFactory;
import io.flinkonnx.providers.SessionSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Creates the ORT session of a fetched model: limits check, creation along the EP chain (fallback is
 * {@link SessionFactory}'s), signature, placement probe.
 */
@Internal
public final class SessionLoader {

    /** The largest synthetic warm-up input: the probe must not cost more memory than the records will. */
    private static final long MAX_WARM_UP_BYTES = OnnxInferenceSpec.DEFAULT_MAX_RECORD_BYTES;

    private SessionLoader() {}

    public static SharedSession load(SessionRegistry.Key key, LocalModel model, ProviderChain chain, SessionSettings settings)
            throws OrtException, IOException {
        long start = System.nanoTime();
        RuntimeLimits limits = OrtRuntime.limits();
        if (limits != null) {
            model.checkRuntimeLimits(limits);
        }
        Path profileDir = Files.createTempDirectory("flink-onnx-profile-");
        try {
            ResolvedSession created;
            try {
                // Profile the warm-up run only: it tells where every kernel of the optimized graph runs.
                created = SessionFactory.create(OrtRuntime.env(), model.path().toString(), chain, settings,
                        options -> options.enableProfiling(profileDir.resolve("ort").toString()));
            } catch (SessionCreationException e) {
                throw new ModelLoadException("ONNX Runtime " + OrtRuntime.version() + " could not load model "
                        + model.source().uri() + " (" + model.path() + "): " + e.getCode() + ": "
                        + firstLine(e.getMessage()), e);
            }
            OrtSession session = created.session();
            try {
                ModelSignature signature = model.format() == ModelFormat.ORT || model.signature().isEmpty()
                        ? signatureFromSession(session)
                        : model.signature().get();
                Placement placement = measurePlacement(session, signature);
                long millis = (System.nanoTime() - start) / 1_000_000;
                return new SharedSession(key, session, signature, created.resolution(), millis, model.sizeBytes(),
                        placement.nodes, placement.note);
            } catch (Throwable e) {
                // Errors too (an OutOfMemoryError while warming up): a session left open here is ~50 MB of
                // native memory that nothing can close later.
                closeQuietly(session, e);
                throw e;
            }
        } finally {
            deleteRecursively(profileDir);
        }
    }

    /** Node placements of one warm-up run, or null with the reason. */
    private static final class Placement {
        final List<NodePlacement> nodes;
        final String note;

        Placement(List<NodePlacement> nodes, String note) {
            this.nodes = nodes;
            this.note = note;
        }
    }

    /**
     * Runs the session once on a synthetic record (ones, free dims 1) and reads the profile ORT wrote for
     * it. Profiling stops here: later runs are not profiled.
     */
    private static Placement measurePlacement(OrtSession session, ModelSignature signature) throws OrtException {
        String warmUpError = unsafeToRun(signature);
        if (warmUpError == null) {
            try {
                warmUp(session, signature);
            } catch (Exception | OutOfMemoryError e) {
                // The probe is a report, not a precondition: a model that refuses synthetic inputs (or whose
                // synthetic input does not fit in memory) still loads, with the reason in its report.
                warmUpError = "warm-up run on a synthetic input failed: " + firstLine(e.toString());
            }
        }
        String trace;
        try {
            trace = session.endProfiling();
        } catch (OrtException | RuntimeException e) {
            return new Placement(null, "ORT's profile could not be ended: " + firstLine(e.getMessage()));
        }
        try {
            if (warmUpError != null) {
                return new Placement(null, warmUpError);
            }
            return new Placement(ProfileTraceParser.parse(Path.of(trace)), null);
        } catch (IOException e) {
            return new Placement(null, "cannot read ORT's profile " + trace + ": " + e.getMessage());
        } finally {
            try {
                Files.deleteIfExists(Path.of(trace));
            } catch (IOException ignored) {
                // in the profile folder, deleted with it
            }
        }
    }

    /**
     * Why a synthetic run must not be tried, or null. ORT 1.24's Java API crashes the JVM (not an
     * exception) when a run returns an OPTIONAL value, and only dense tensor inputs can be synthesized.
     */
    public static String unsafeToRun(ModelSignature signature) {
        for (TensorSpec t : signature.outputs()) {
            if (t.kind() == TensorSpec.Kind.OPTIONAL || t.kind() == TensorSpec.Kind.UNKNOWN) {
                return "no warm-up run: output " + t + " is " + t.kind() + ", which ORT's Java API cannot return";
            }
        }
        for (TensorSpec t : signature.inputs()) {
            if (t.kind() != TensorSpec.Kind.TENSOR || !t.elementType().isSupportedForRecords()) {
                return "no warm-up run: input " + t + " cannot be synthesized";
            }
        }
        return null;
    }

    private static void warmUp(OrtSession session, ModelSignature signature) throws OrtException {
        List<TensorSpec> inputs = signature.inputs();
        RecordInputs row = new RecordInputs("warm-up", inputs);
        for (int i = 0; i < inputs.size(); i++) {
            TensorSpec spec = inputs.get(i);
            Class<?> arrayType = spec.elementType().javaArrayType();
            if (spec.kind() != TensorSpec.Kind.TENSOR || arrayType == null) {
                throw new IllegalArgumentException("input " + spec + " cannot be synthesized");
            }
            List<Dim> dims = spec.recordDims();
            long[] shape = new long[dims.size()];
            long values = 1;
            for (int d = 0; d < shape.length; d++) {
                shape[d] = dims.get(d).isFixed() ? dims.get(d).value() : 1;
                values = shape[d] == 0 ? 0 : Math.min(Long.MAX_VALUE / shape[d], values) * shape[d];
            }
            if (values > MAX_WARM_UP_BYTES / Math.max(1, spec.elementType().byteSize())) {
                throw new IllegalArgumentException("input " + spec + " is too large to synthesize (more than "
                        + MAX_WARM_UP_BYTES + " bytes)");
            }
            // Ones, not zeros: a zero divisor makes integer Div/Mod kernels crash the process (SIGFPE).
            Object ones = java.lang.reflect.Array.newInstance(arrayType.getComponentType(),
                    Math.toIntExact(Padding.product(shape)));
            fillWithOnes(ones);
            row.putDerived(i, ones, shape);
        }
        TensorPacker packer = new TensorPacker(OrtRuntime.env(), inputs, 0, -1);
        Map<String, ai.onnxruntime.OnnxTensor> tensors = packer.pack(new RecordInputs[] {row}, 0, 1);
        try (OrtSession.Result ignored = session.run(tensors)) {
            // outputs unused: the run is for the profile
        } finally {
            tensors.values().forEach(ai.onnxruntime.OnnxTensor::close);
        }
    }

    private static void fillWithOnes(Object array) {
        if (array instanceof float[]) {
            java.util.Arrays.fill((float[]) array, 1f);
        } else if (array instanceof double[]) {
            java.util.Arrays.fill((double[]) array, 1d);
        } else if (array instanceof long[]) {
            java.util.Arrays.fill((long[]) array, 1L);
        } else if (array instanceof int[]) {
            java.util.Arrays.fill((int[]) array, 1);
        } else if (array instanceof short[]) {
            java.util.Arrays.fill((short[]) array, (short) 1);
        } else if (array instanceof byte[]) {
            java.util.Arrays.fill((byte[]) array, (byte) 1);
        } else if (array instanceof boolean[]) {
            java.util.Arrays.fill((boolean[]) array, true);
        } else if (array instanceof String[]) {
            java.util.Arrays.fill((String[]) array, "");
        }
    }

    private static void closeQuietly(OrtSession session, Throwable failure) {
        try {
            session.close();
        } catch (Throwable t) {
            failure.addSuppressed(t);
        }
    }

    private static void deleteRecursively(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a leftover empty temp folder is harmless
        }
    }

    /** The signature of a session (the only source for {@code .ort} files); -1 dims become symbolic/unknown. */
    public static ModelSignature signatureFromSession(OrtSession session) throws OrtException {
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
