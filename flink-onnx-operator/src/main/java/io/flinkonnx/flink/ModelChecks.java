package io.flinkonnx.flink;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.drift.DriftAccumulator;
import io.flinkonnx.flink.drift.DriftMonitor;
import io.flinkonnx.flink.drift.GoldenVectors;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.flink.session.SessionLoader;
import io.flinkonnx.flink.session.SessionRegistry;
import io.flinkonnx.flink.session.SharedSession;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelFormat;
import io.flinkonnx.model.ModelSignature;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Model checks for CI and tooling, with the same loader, validation, conversion and reports as the
 * operators: what a model is and where it would run ({@link #inspect}), whether it loads ({@link #check}),
 * conversion to an optimized ONNX or ORT-format file ({@link #optimize}), and its outputs against ONNX
 * golden vectors ({@link #verify}). The {@code flink-onnx-cli} jar is a command line over these.
 *
 * <pre>{@code
 * ModelChecks.check(ModelSource.of("models/fraud.onnx"));          // throws with the file and the cause
 * List<ModelChecks.SetResult> results = ModelChecks.verify(ModelSource.of("model.onnx"),
 *         Path.of("model-tests"), DriftTolerance.defaults());
 * }</pre>
 */
@PublicEvolving
public final class ModelChecks {
    private static final String SLOT = "model-checks";

    private ModelChecks() {}

    /** What a model is and where it would run. */
    public static final class Inspection {
        public String uri;
        public String sha256;
        public long sizeBytes;
        public ModelFormat format;
        public ModelSignature signature;
        public List<String> externalData;
        public String runtime;
        public List<String> availableProviders;
        public FallbackReport fallback;
    }

    /** The outcome of one {@code test_data_set_N}: its drift report, or why it could not be compared. */
    public static final class SetResult {
        public String dataSet;
        public DriftReport report;
        public String error;

        /**
         * True only when outputs were compared and all were within tolerance: comparing nothing is no pass.
         *
         * @return true when this set has a report, it compared at least one output and flagged none
         */
        public boolean passed() {
            return error == null && report != null && !report.outputs.isEmpty() && !report.flagged;
        }
    }

    /**
     * Fetches, checks and loads the model on {@code chain}; the fallback report says where it runs.
     *
     * @param source the model, with its pin if any, not null
     * @param chain the EP chain to load it on, as an operator would, not null
     * @return the model's URI, sha256, size, format, signature and external data, the runtime and its providers,
     *     and the fallback report (which EP each part of the graph runs on)
     * @throws Exception when the model cannot be fetched or fails a check (a
     *     {@link io.flinkonnx.model.ModelLoadException} naming the file and the cause), or ONNX Runtime cannot load
     *     it on {@code chain}
     */
    public static Inspection inspect(ModelSource source, ProviderChain chain) throws Exception {
        try (LocalModel model = source.fetch()) {
            SharedSession session = load(model, chain, SessionSettings.defaults());
            try {
                Inspection i = new Inspection();
                i.uri = source.uri();
                i.sha256 = model.sha256();
                i.sizeBytes = model.sizeBytes();
                i.format = model.format();
                i.signature = session.signature();
                i.externalData = model.externalData();
                i.runtime = "ONNX Runtime " + OrtRuntime.version();
                i.availableProviders = OrtEnvironment.getAvailableProviders().stream()
                        .map(Enum::name)
                        .collect(Collectors.toList());
                i.fallback = FallbackReport.of(
                        source.uri(),
                        model.sha256(),
                        0,
                        session.resolution(),
                        session.placement(),
                        session.placementNote());
                return i;
            } finally {
                session.close();
            }
        }
    }

    /**
     * Succeeds when the model would load here: fetch, checks before ORT, and an ORT session on CPU.
     *
     * @param source the model, with its pin if any, not null
     * @throws Exception when the model cannot be fetched or fails a check (a
     *     {@link io.flinkonnx.model.ModelLoadException} naming the file and the cause), or ONNX Runtime cannot load
     *     it on CPU
     */
    public static void check(ModelSource source) throws Exception {
        try (LocalModel model = source.fetch()) {
            load(model, ProviderChain.cpu(), SessionSettings.defaults()).close();
        }
    }

    /**
     * Writes the model optimized at {@code level} to {@code out}, as ONNX or ORT format. Returns a warning
     * when the result is tied to this machine (ORT format at level EXTENDED or ALL bakes in layouts for
     * this CPU), else null.
     *
     * @param source the model, with its pin if any, not null
     * @param out the file to write; its folders are created
     * @param level the graph optimization level to apply
     * @param format the format of the file written, ONNX or ORT
     * @return a warning when the file is tied to this machine's CPU, else null
     * @throws IllegalStateException when ONNX Runtime wrote no file at {@code out}
     * @throws Exception when the folders of {@code out} cannot be created, the model cannot be fetched or fails a
     *     check ({@link io.flinkonnx.model.ModelLoadException}), or ONNX Runtime cannot load it
     */
    public static String optimize(
            ModelSource source,
            Path out,
            SessionSettings.OptimizationLevel level,
            SessionSettings.ModelFileFormat format)
            throws Exception {
        Path target = out.toAbsolutePath();
        Files.createDirectories(target.getParent());
        SessionSettings settings = SessionSettings.builder()
                .optimizationLevel(level)
                .saveOptimizedModel(target.toString(), format)
                .build();
        try (LocalModel model = source.fetch()) {
            load(model, ProviderChain.cpu(), settings).close();
        }
        if (!Files.isRegularFile(target)) {
            throw new IllegalStateException("ONNX Runtime did not write " + target);
        }
        boolean hardwareSpecific = format == SessionSettings.ModelFileFormat.ORT
                && (level == SessionSettings.OptimizationLevel.EXTENDED
                        || level == SessionSettings.OptimizationLevel.ALL);
        return hardwareSpecific
                ? "optimization level " + level + " may bake hardware-specific layouts (e.g. NCHWc for"
                        + " this CPU's vector width) into " + target.getFileName()
                        + ": use --level basic for a file other"
                        + " machines will load"
                : null;
    }

    /**
     * Runs every {@code test_data_set_*} below {@code testData} through the model with the operator's
     * conversion, comparing outputs under {@code tolerance}. An input whose type or shape does not fit the
     * model is an error of that set (values are never cast).
     *
     * @param source the model, with its pin if any, not null
     * @param testData a {@code test_data_set_N} folder, or a folder holding such folders
     * @param tolerance how far each output may be from its golden value, not null
     * @return one result per {@code test_data_set_N} folder, in name order; a set that could not be compared
     *     carries its {@link SetResult#error}
     * @throws IOException when {@code testData} is not a folder or holds no {@code test_data_set_*} folder
     * @throws Exception when the model cannot be fetched or fails a check
     *     ({@link io.flinkonnx.model.ModelLoadException}), or ONNX Runtime cannot load it on CPU
     */
    public static List<SetResult> verify(ModelSource source, Path testData, DriftTolerance tolerance) throws Exception {
        List<Path> folders = ReferenceDataSet.folders(testData);
        List<SetResult> results = new ArrayList<>();
        try (LocalModel model = source.fetch()) {
            SharedSession session = load(model, ProviderChain.cpu(), SessionSettings.defaults());
            try {
                String unsupported = unsupportedValues(session.signature());
                GoldenVectors golden = new GoldenVectors(source.uri(), session.session(), session.signature());
                for (Path folder : folders) {
                    SetResult r = new SetResult();
                    r.dataSet = folder.getFileName().toString();
                    results.add(r);
                    if (unsupported != null) {
                        r.error = unsupported;
                        continue;
                    }
                    try {
                        ReferenceDataSet set = GoldenVectors.read(folder, source.uri(), session.signature());
                        Map<String, DriftAccumulator> acc = new LinkedHashMap<>();
                        golden.compare(set, acc, tolerance, DriftMonitor::classes);
                        DriftReport d = new DriftReport();
                        d.model = source.uri();
                        d.source = DriftReport.Source.GOLDEN_VECTORS;
                        d.reference = set.name();
                        d.records = 1;
                        acc.values().forEach(a -> d.outputs.add(a.result()));
                        d.flagged = d.outputs.stream().anyMatch(o -> !o.withinTolerance);
                        d.timestampMillis = System.currentTimeMillis();
                        r.report = d;
                    } catch (IOException | RecordConversionException | IllegalArgumentException | OrtException e) {
                        r.error = e.getMessage();
                    }
                }
            } finally {
                session.close();
            }
        }
        return results;
    }

    /** Why the model's inputs or outputs cannot go through record conversion, or null when they can. */
    private static String unsupportedValues(ModelSignature signature) {
        for (TensorSpec t : signature.inputs()) {
            if (t.kind() != TensorSpec.Kind.TENSOR) {
                return "input " + t + " is a " + t.kind() + ": ORT's Java API cannot create such inputs";
            }
            if (!t.elementType().isSupportedForRecords()) {
                return "input " + t + " has element type " + t.elementType() + ", which ORT's Java API cannot create";
            }
        }
        for (TensorSpec t : signature.outputs()) {
            if (t.kind() != TensorSpec.Kind.TENSOR) {
                return "output " + t + " is a " + t.kind() + ": golden vectors compare tensors only";
            }
        }
        return SessionLoader.unsafeToRun(signature);
    }

    /**
     * The signature of a model that carries none of its own (ORT format), from a short-lived CPU session.
     *
     * @param model a fetched model, open
     * @return its inputs and outputs as ONNX Runtime reads them
     * @throws io.flinkonnx.model.ModelLoadException when ONNX Runtime cannot load the model
     */
    @Internal
    public static ModelSignature sessionSignature(LocalModel model) {
        return SessionLoader.signatureOf(model);
    }

    /** A session of its own (not shared: tools run outside any slot); the caller closes it. */
    private static SharedSession load(LocalModel model, ProviderChain chain, SessionSettings settings)
            throws Exception {
        return SessionLoader.load(
                new SessionRegistry.Key(SLOT, model.sha256(), chain, settings), model, chain, settings);
    }
}
