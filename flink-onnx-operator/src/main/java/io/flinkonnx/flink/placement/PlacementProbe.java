package io.flinkonnx.flink.placement;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.NodePlacement;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.tensor.ElementCodec;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.TensorSpec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.annotation.Internal;

/**
 * Measures where each kernel of a session's optimized graph runs: one run on a synthetic record, then
 * ORT's profile of it. The session must have been created with profiling enabled; profiling ends here,
 * so later runs are not profiled.
 *
 * <p>The probe is a report, never a precondition: a model that cannot be given a synthetic record, or
 * whose run or profile fails, still loads, with the reason as the {@link Placement}'s note. Synthetic
 * inputs are built here with ORT's own {@link OnnxTensor#createTensor}, independent of record encoding.
 *
 * <pre>{@code
 * Placement p = PlacementProbe.measure(session, signature); // p.nodes, or null and p.note
 * }</pre>
 */
@Internal
public final class PlacementProbe {
    /** The largest synthetic input: the probe must not cost more memory than the records will. */
    public static final long MAX_SYNTHETIC_BYTES = OnnxInferenceSpec.DEFAULT_MAX_RECORD_BYTES;

    private PlacementProbe() {}

    /** Node placements of one warm-up run, or null with the reason. */
    public static final class Placement {
        public final List<NodePlacement> nodes;
        public final String note;
        /**
         * The warm-up could not run but profiling is still on: the session's first real run is profiled and
         * read with {@link #fromProfile} instead.
         */
        public final boolean pending;

        Placement(List<NodePlacement> nodes, String note) {
            this(nodes, note, false);
        }

        Placement(List<NodePlacement> nodes, String note, boolean pending) {
            this.nodes = nodes;
            this.note = note;
            this.pending = pending;
        }
    }

    /**
     * Runs {@code session} once on a synthetic record (ones, free dims 1) and reads and deletes the profile
     * ORT wrote for it. Never throws for the probe's own failures (any {@code Exception} or
     * {@code OutOfMemoryError} becomes the note).
     */
    public static Placement measure(OrtSession session, ModelSignature signature) {
        return measure(session, signature, false);
    }

    /**
     * As {@link #measure(OrtSession, ModelSignature)}; with {@code deferOnFailure}, a warm-up that fails
     * (models that refuse synthetic shapes: a reflect pad needs a length of 2) leaves profiling on and
     * returns a {@code pending} placement, to be read from the first real run with {@link #fromProfile}.
     */
    public static Placement measure(OrtSession session, ModelSignature signature, boolean deferOnFailure) {
        String warmUpError = unsafeToRun(signature);
        boolean runnable = warmUpError == null;
        if (runnable) {
            try {
                run(session, signature);
            } catch (Exception | OutOfMemoryError e) {
                // A model that refuses synthetic inputs (or whose synthetic input does not fit in memory) still
                // loads, with the reason in its report.
                warmUpError = "warm-up run on a synthetic input failed: " + firstLine(e.toString());
            }
        }
        if (runnable && warmUpError != null && deferOnFailure) {
            return new Placement(null, warmUpError + "; placement is measured on the first real batch", true);
        }
        if (warmUpError != null) {
            try {
                Files.deleteIfExists(Path.of(session.endProfiling()));
            } catch (Exception e) {
                // the warm-up's reason is the one to report
            }
            return new Placement(null, warmUpError);
        }
        return fromProfile(session);
    }

    /** Ends the session's profiling and reads (then deletes) the profile: the placement of what it ran. */
    public static Placement fromProfile(OrtSession session) {
        String trace;
        try {
            trace = session.endProfiling();
        } catch (Exception e) {
            return new Placement(null, "ORT's profile could not be ended: " + firstLine(e.getMessage()));
        }
        try {
            return new Placement(ProfileTraceParser.parse(Path.of(trace)), null);
        } catch (IOException | RuntimeException e) {
            return new Placement(null, "cannot read ORT's profile " + trace + ": " + e.getMessage());
        } finally {
            try {
                Files.deleteIfExists(Path.of(trace));
            } catch (IOException | RuntimeException ignored) {
                // in the caller's profile folder, deleted with it
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

    private static void run(OrtSession session, ModelSignature signature) throws OrtException {
        Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
        try {
            for (TensorSpec spec : signature.inputs()) {
                // The session exists, so the environment does (created through OrtRuntime's checks).
                tensors.put(spec.name(), ones(OrtEnvironment.getEnvironment(), spec));
            }
            try (OrtSession.Result ignored = session.run(tensors)) {
                // outputs unused: the run is for the profile
            }
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * One record of {@code spec} filled with ones (free dims and the batch axis 1). Ones, not zeros: a zero
     * divisor makes integer Div/Mod kernels crash the process (SIGFPE).
     */
    public static OnnxTensor ones(OrtEnvironment env, TensorSpec spec) throws OrtException {
        return ones(env, spec, 1);
    }

    /**
     * One record of {@code spec} filled with ones, its free dims {@code freeDim} long (the batch axis 1).
     *
     * @throws IllegalArgumentException where it would take more than 64 MiB, or the input cannot be synthesized
     */
    public static OnnxTensor ones(OrtEnvironment env, TensorSpec spec, long freeDim) throws OrtException {
        ElementType type = spec.elementType();
        if (spec.kind() != TensorSpec.Kind.TENSOR || !type.isSupportedForRecords()) {
            throw new IllegalArgumentException("input " + spec + " cannot be synthesized");
        }
        List<Dim> dims = spec.dims();
        long[] shape = new long[dims.size()];
        long values = 1;
        for (int d = 0; d < shape.length; d++) {
            shape[d] = d == spec.batchAxis()
                    ? 1
                    : dims.get(d).isFixed() ? dims.get(d).value() : freeDim;
            values = shape[d] == 0 ? 0 : Math.min(Long.MAX_VALUE / shape[d], values) * shape[d];
        }
        if (values > MAX_SYNTHETIC_BYTES / Math.max(1, type.byteSize())) {
            throw new IllegalArgumentException(
                    "input " + spec + " is too large to synthesize (more than " + MAX_SYNTHETIC_BYTES + " bytes)");
        }
        int n = (int) values;
        ElementCodec codec = ElementCodec.of(type);
        Object ones = codec.newArray(n);
        codec.fillOnes(ones);
        if (!codec.buffered()) {
            return OnnxTensor.createTensor(env, (String[]) ones, shape);
        }
        ByteBuffer buf = ByteBuffer.allocateDirect(n * codec.byteSize()).order(ByteOrder.nativeOrder());
        codec.put(buf, ones);
        return codec.tensor(env, buf, shape);
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
