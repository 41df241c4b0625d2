package io.flinkonnx.cli;

import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelChecks;
import io.flinkonnx.flink.NodePlacement;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.flink.annotation.Internal;

/**
 * {@code java -jar flink-onnx-cli.jar <command>}: inspect, check, optimize and verify ONNX models with the
 * library's own loader, checks, conversion and reports. Exit status: 0 success, 1 the model failed the
 * check or verification, 2 bad usage.
 */
@Internal
public final class OnnxCli {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;

    private static final String HELP = String.join(
            "\n",
            "usage: java -jar flink-onnx-cli.jar <command> MODEL [options]",
            "  inspect  MODEL [--providers CHAIN]     signature, IR, opsets, producer, size, sha256, external data,",
            "                                         available EPs and where the model's nodes run on CHAIN",
            "  check    MODEL                         exit 0 when the model would load, 1 with the reason",
            "  optimize MODEL -o OUT [--level basic|extended|all] [--format onnx|ort]",
            "  verify   MODEL --test-data DIR [--rtol R] [--atol A]",
            "                                         run ONNX test_data_set_N folders, print per-output errors,",
            "                                         exit 1 when out of tolerance, an input does not fit, or an",
            "                                         output_K.pb is missing (a set must compare every output)",
            "MODEL: a path, file:/classpath: URI, or any Flink file system URI; append @sha256:HEX to pin it.");

    private OnnxCli() {}

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs a command; returns the exit status. */
    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length < 2 || Arrays.asList(args).contains("--help")) {
            err.println(HELP);
            return USAGE;
        }
        Map<String, String> options = new HashMap<>();
        List<String> positional = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            if (args[i].startsWith("-")) {
                if (i + 1 >= args.length) {
                    err.println("Option " + args[i] + " needs a value\n" + HELP);
                    return USAGE;
                }
                options.put(args[i].replaceFirst("^--?", ""), args[++i]);
            } else {
                positional.add(args[i]);
            }
        }
        if (positional.size() != 1) {
            err.println("Expected one MODEL, got " + positional + "\n" + HELP);
            return USAGE;
        }
        ModelSource model;
        try {
            model = source(positional.get(0));
            switch (args[0]) {
                case "inspect":
                    return inspect(model, options, out);
                case "check":
                    ModelChecks.check(model);
                    out.println("OK: " + model.uri() + " loads in ONNX Runtime");
                    return OK;
                case "optimize":
                    return optimize(model, options, out, err);
                case "verify":
                    return verify(model, options, out, err);
                default:
                    err.println("Unknown command '" + args[0] + "'\n" + HELP);
                    return USAGE;
            }
        } catch (IllegalArgumentException e) {
            err.println("error: " + e.getMessage());
            return USAGE;
        } catch (Exception e) {
            err.println("FAILED: " + e.getMessage());
            return FAILED;
        }
    }

    private static ModelSource source(String arg) {
        int pin = arg.lastIndexOf("@sha256:");
        return pin < 0
                ? ModelSource.of(arg)
                : ModelSource.of(arg.substring(0, pin)).withSha256(arg.substring(pin + 8));
    }

    private static int inspect(ModelSource model, Map<String, String> options, PrintStream out) throws Exception {
        ProviderChain chain = ProviderChain.parse(options.getOrDefault("providers", "cpu"));
        ModelChecks.Inspection i = ModelChecks.inspect(model, chain);
        out.println("model:      " + i.uri);
        out.println("format:     " + i.format + ", " + i.sizeBytes + " bytes, sha256 " + i.sha256);
        if (i.signature.irVersion() > 0) {
            out.println("IR:         " + i.signature.irVersion());
            Map<String, Long> opsets = new LinkedHashMap<>();
            i.signature.opsetImports().forEach((domain, v) -> opsets.put(domain.isEmpty() ? "ai.onnx" : domain, v));
            out.println("opsets:     " + opsets);
            out.println("producer:   " + (i.signature.producerName() + " " + i.signature.producerVersion()).trim());
        }
        out.println("inputs:");
        i.signature.inputs().forEach(t -> out.println("  " + describe(t)));
        out.println("outputs:");
        i.signature.outputs().forEach(t -> out.println("  " + describe(t)));
        out.println("external data: " + (i.externalData.isEmpty() ? "none" : i.externalData));
        out.println("runtime:    " + i.runtime + ", execution providers in this build: " + i.availableProviders);
        FallbackReport r = i.fallback;
        out.println("placement on " + chain + ": " + r.verdict);
        if (!r.skipped.isEmpty()) {
            r.skipped.forEach(s -> out.println("  skipped " + s));
        }
        for (NodePlacement n : r.nodes) {
            out.printf(Locale.ROOT, "  %-40s %-24s %-10s %6d us%n", n.name, n.opType, n.provider, n.durationMicros);
        }
        out.printf(
                Locale.ROOT,
                "  %d nodes, %d on cpu (%.0f%% of warm-up time), %d EP boundaries%n",
                r.nodes.size(),
                r.nodesOnCpu,
                100 * r.cpuTimeFraction,
                r.epBoundaries);
        if (r.note != null) {
            out.println("  note: " + r.note);
        }
        return OK;
    }

    private static String describe(TensorSpec t) {
        return t + (t.hasBatchAxis() ? "  (batch axis " + t.batchAxis() + ")" : "");
    }

    private static int optimize(ModelSource model, Map<String, String> options, PrintStream out, PrintStream err)
            throws Exception {
        String target = options.get("o");
        if (target == null) {
            err.println("optimize needs -o OUT\n" + HELP);
            return USAGE;
        }
        SessionSettings.OptimizationLevel level = SessionSettings.OptimizationLevel.valueOf(
                options.getOrDefault("level", "basic").toUpperCase(Locale.ROOT).replace("DISABLE", "DISABLE_ALL"));
        SessionSettings.ModelFileFormat format = SessionSettings.ModelFileFormat.valueOf(
                options.getOrDefault("format", target.endsWith(".ort") ? "ort" : "onnx")
                        .toUpperCase(Locale.ROOT));
        String warning = ModelChecks.optimize(model, Path.of(target), level, format);
        if (warning != null) {
            err.println("warning: " + warning);
        }
        out.println("wrote " + Path.of(target).toAbsolutePath() + " (" + format + ", level " + level + ")");
        return OK;
    }

    private static int verify(ModelSource model, Map<String, String> options, PrintStream out, PrintStream err)
            throws Exception {
        String dir = options.get("test-data");
        if (dir == null) {
            err.println("verify needs --test-data DIR\n" + HELP);
            return USAGE;
        }
        DriftTolerance tolerance = DriftTolerance.of(
                Double.parseDouble(options.getOrDefault("rtol", "1e-3")),
                Double.parseDouble(options.getOrDefault("atol", "1e-5")));
        List<ModelChecks.SetResult> results = ModelChecks.verify(model, Path.of(dir), tolerance);
        boolean passed = true;
        for (ModelChecks.SetResult r : results) {
            passed &= r.passed();
            if (r.error != null) {
                out.println(r.dataSet + ": ERROR " + r.error);
                continue;
            }
            out.println(r.dataSet + ": " + (r.passed() ? "PASS" : "FAIL"));
            for (OutputDrift d : r.report.outputs) {
                out.println("  " + d);
            }
        }
        out.println(passed ? "PASS (" + results.size() + " data sets)" : "FAIL");
        return passed ? OK : FAILED;
    }
}
