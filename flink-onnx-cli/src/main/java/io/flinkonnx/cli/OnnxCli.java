package io.flinkonnx.cli;

import ai.onnxruntime.OrtLoggingLevel;
import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelChecks;
import io.flinkonnx.flink.NodePlacement;
import io.flinkonnx.flink.OutputDrift;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.model.LocalModel;
import io.flinkonnx.model.ModelSource;
import io.flinkonnx.model.ReferenceDataSet;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Callable;
import org.apache.flink.annotation.Internal;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code java -jar flink-onnx-cli.jar <command>}: inspect, check, optimize, verify and publish ONNX models with
 * the library's own loader, checks, conversion and reports. Exit status: 0 success, 1 the model failed the
 * check or verification, 2 bad usage (for {@code publish}, also: the version exists already). Arguments are parsed by picocli: {@code --help} on every command,
 * {@code --version}, and {@code generate-completion} prints a bash/zsh completion script.
 */
@Internal
@Command(
        name = "flink-onnx-cli",
        synopsisHeading = "usage: ",
        mixinStandardHelpOptions = true,
        versionProvider = OnnxCli.Version.class,
        description = "Inspect, check, optimize, verify and publish ONNX models with flink-onnx's own loader,"
                + " checks and conversion; no Python needed.",
        subcommands = {
            OnnxCli.Inspect.class,
            OnnxCli.Check.class,
            OnnxCli.Optimize.class,
            OnnxCli.Verify.class,
            OnnxCli.Publish.class,
            CommandLine.HelpCommand.class,
            AutoComplete.GenerateCompletion.class
        },
        footerHeading = "%n",
        footer = {
            "MODEL: a path, a file: or classpath: URI, or any Flink file system URI;",
            "  append @sha256:HEX to pin it.",
            "Exit status: 0 success, 1 the model failed the check or verification,",
            "  2 bad usage (or, for publish, the version exists already).",
            "Shell completion: source <(java -jar flink-onnx-cli.jar generate-completion)",
            "  with flink-onnx-cli an alias of java -jar flink-onnx-cli.jar."
        })
public final class OnnxCli implements Callable<Integer> {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;

    private final PrintStream out;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    private OnnxCli(PrintStream out) {
        this.out = out;
    }

    public static void main(String[] args) {
        // ORT logs to the native stderr; the CLI reports every failure itself (with ORT's message), so ORT's
        // own lines, such as an ERROR for a warm-up a model cannot run, would only confuse a passing check.
        try {
            OrtRuntime.env(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
        } catch (IllegalStateException e) { // this ORT cannot run in this process: say why and how to fix it
            System.err.println("FAILED: " + e.getMessage());
            System.exit(FAILED);
        }
        System.exit(run(args, System.out, System.err));
    }

    /** Runs a command; returns the exit status. */
    static int run(String[] args, PrintStream out, PrintStream err) {
        return commandLine(out, err).execute(args);
    }

    /** The command line with its subcommands, printing to {@code out} and {@code err}. */
    static CommandLine commandLine(PrintStream out, PrintStream err) {
        CommandLine cli = new CommandLine(new OnnxCli(out));
        cli.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
        cli.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
        cli.setParameterExceptionHandler(OnnxCli::usageError);
        cli.setExecutionExceptionHandler((e, command, parseResult) -> {
            if (e instanceof IllegalArgumentException) {
                command.getErr().println("error: " + e.getMessage());
                return USAGE;
            }
            command.getErr().println("FAILED: " + e.getMessage());
            return FAILED;
        });
        return cli;
    }

    /** Bad usage: the reason, then the usage of the command it concerns; exit 2. */
    private static int usageError(CommandLine.ParameterException e, String[] args) {
        CommandLine command = e.getCommandLine();
        PrintWriter err = command.getErr();
        if (e instanceof CommandLine.UnmatchedArgumentException unmatched
                && command.getParent() == null
                && !unmatched.getUnmatched().isEmpty()
                && args.length > 0
                && unmatched.getUnmatched().get(0).equals(args[0])) {
            err.println("Unknown command '" + args[0] + "'");
        } else {
            err.println(e.getMessage());
        }
        CommandLine.UnmatchedArgumentException.printSuggestions(e, err);
        command.usage(err);
        return USAGE;
    }

    /** No command given. */
    @Override
    public Integer call() {
        throw new CommandLine.ParameterException(spec.commandLine(), "Missing command");
    }

    /** The versions this jar was built with (filtered into version.properties by Maven). */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            Properties p = new Properties();
            try (InputStream in = OnnxCli.class.getResourceAsStream("version.properties")) {
                p.load(in);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return new String[] {
                "flink-onnx-cli " + p.getProperty("version"),
                "ONNX Runtime " + p.getProperty("onnxruntime") + ", Flink " + p.getProperty("flink") + ", picocli "
                        + CommandLine.VERSION + ", Java " + System.getProperty("java.version")
            };
        }
    }

    /** Base of the model commands: the MODEL argument and the parent's output stream. */
    abstract static class ModelCommand implements Callable<Integer> {
        @ParentCommand
        OnnxCli parent;

        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Parameters(
                index = "0",
                paramLabel = "MODEL",
                description =
                        "a path, file:/classpath: URI, or any Flink file system URI; append @sha256:HEX" + " to pin it")
        String model;

        PrintStream out() {
            return parent.out;
        }

        /** A usage error (exit 2) about this command, with its usage. */
        CommandLine.ParameterException usage(String message) {
            return new CommandLine.ParameterException(spec.commandLine(), message);
        }
    }

    @Command(
            name = "inspect",
            synopsisHeading = "usage: ",
            mixinStandardHelpOptions = true,
            description = {
                "Signature, IR, opsets, producer, size, sha256, external data, available EPs and where the model's"
                        + " nodes run on CHAIN."
            })
    static final class Inspect extends ModelCommand {
        @Option(
                names = "--providers",
                paramLabel = "CHAIN",
                defaultValue = "cpu",
                description = "execution provider chain, e.g. \"cuda > cpu\" (default: ${DEFAULT-VALUE})")
        String providers;

        @Override
        public Integer call() throws Exception {
            return inspect(source(model), providers, out());
        }
    }

    @Command(
            name = "check",
            synopsisHeading = "usage: ",
            mixinStandardHelpOptions = true,
            description = "Exit 0 when the model would load in ONNX Runtime, 1 with the reason.")
    static final class Check extends ModelCommand {
        @Override
        public Integer call() throws Exception {
            ModelSource source = source(model);
            ModelChecks.check(source);
            out().println("OK: " + source.uri() + " loads in ONNX Runtime");
            return OK;
        }
    }

    @Command(
            name = "optimize",
            synopsisHeading = "usage: ",
            mixinStandardHelpOptions = true,
            description = "Write an ONNX- or ORT-format file optimized by ONNX Runtime; warns when the level bakes in"
                    + " this CPU's layouts.")
    static final class Optimize extends ModelCommand {
        @Option(
                names = {"-o", "--output"},
                paramLabel = "OUT",
                description = "the file to write (required)")
        String output;

        @Option(
                names = "--level",
                paramLabel = "LEVEL",
                defaultValue = "basic",
                description = "basic, extended or all (default: ${DEFAULT-VALUE})")
        String level;

        @Option(
                names = "--format",
                paramLabel = "FORMAT",
                description = "onnx or ort (default: ort when OUT ends with .ort, else onnx)")
        String format;

        @Override
        public Integer call() throws Exception {
            if (output == null) {
                throw usage("optimize needs -o OUT");
            }
            return optimize(
                    source(model),
                    output,
                    level,
                    format,
                    out(),
                    spec.commandLine().getErr());
        }
    }

    @Command(
            name = "verify",
            synopsisHeading = "usage: ",
            mixinStandardHelpOptions = true,
            description = {
                "Run ONNX test_data_set_N folders, print per-output errors; exit 1 when out of tolerance, an input"
                        + " does not fit, or an output_K.pb is missing (a set must compare every output)."
            })
    static final class Verify extends ModelCommand {
        @Option(
                names = "--test-data",
                paramLabel = "DIR",
                description = "the folder holding test_data_set_N folders (required)")
        String testData;

        @Option(
                names = "--rtol",
                paramLabel = "R",
                defaultValue = "1e-3",
                description = "relative tolerance (default: ${DEFAULT-VALUE})")
        double rtol;

        @Option(
                names = "--atol",
                paramLabel = "A",
                defaultValue = "1e-5",
                description = "absolute tolerance (default: ${DEFAULT-VALUE})")
        double atol;

        @Override
        public Integer call() throws Exception {
            if (testData == null) {
                throw usage("verify needs --test-data DIR");
            }
            return verify(source(model), testData, DriftTolerance.of(rtol, atol), out());
        }
    }

    @Command(
            name = "publish",
            synopsisHeading = "usage: ",
            description = {
                "Publish MODEL as version N of a watched model folder, atomically.",
                "MODEL is checked first (as check does) and, with --golden, verified against those golden vectors"
                        + " (as verify does); a model that fails either is not published (exit 1). Layout:",
                "  TO/vN/MODEL_FILE         the model, its .onnx or .ort file name kept",
                "  TO/vN/MODEL_FILE.sha256  \"<sha256, lower-case hex>  MODEL_FILE\" (sha256sum)",
                "  TO/vN/test_data_set_K/   each golden set, copied from --golden",
                "Atomic: the files are written to TO/.vN.tmp-RANDOM/ (the watcher ignores names starting with '.'"
                        + " or '_'), then renamed to TO/vN. On object stores (s3, s3a, s3p, gs, oss, obs, cosn),"
                        + " whose rename copies object by object, and wherever the file system refuses the rename,"
                        + " they are written straight into TO/vN instead, the model file last: a version folder"
                        + " without its model file is still being written.",
                "An existing TO/vN is never overwritten (exit 2): to roll back, publish the old model as a higher"
                        + " version or point a control message at the old one."
            },
            footerHeading = "%n",
            footer = {
                "TO: a folder path or any Flink file system URI (s3://, hdfs://, ...; that file",
                "  system's jar on the class path). Exit status: 0 published, 1 the model failed",
                "  the check or its golden vectors, 2 bad usage or TO/vN exists already."
            })
    static final class Publish extends ModelCommand {
        @Option(
                names = {"-h", "--help"},
                usageHelp = true,
                description = "Show this help message and exit.")
        boolean help;

        @Option(
                names = "--to",
                paramLabel = "TO",
                required = true,
                description = "the watched model folder (a path or a Flink file system URI)")
        String to;

        @Option(
                names = "--version",
                paramLabel = "N",
                required = true,
                description = "the version's name, ordered as the watcher orders them (v10 after v9, 2.10.0 after"
                        + " 2.9.9, dates in order): the folder written is TO/N, or TO/vN for a bare number N")
        String version;

        @Option(
                names = "--golden",
                paramLabel = "DIR",
                description = "a folder holding test_data_set_N folders (or one such folder): MODEL must pass"
                        + " them, and they are published with it")
        String golden;

        @Option(
                names = "--rtol",
                paramLabel = "R",
                defaultValue = "1e-3",
                description = "relative tolerance for --golden (default: ${DEFAULT-VALUE})")
        double rtol;

        @Option(
                names = "--atol",
                paramLabel = "A",
                defaultValue = "1e-5",
                description = "absolute tolerance for --golden (default: ${DEFAULT-VALUE})")
        double atol;

        @Override
        public Integer call() throws Exception {
            org.apache.flink.core.fs.Path folder = Publisher.folder(to);
            org.apache.flink.core.fs.Path target;
            try {
                target = Publisher.versionFolder(folder, version);
            } catch (IllegalArgumentException e) {
                throw usage("--version: " + e.getMessage());
            }
            org.apache.flink.core.fs.FileSystem fs = Publisher.fileSystem(folder);
            if (fs.exists(target)) {
                throw Publisher.exists(target);
            }
            List<Path> sets = List.of();
            if (golden != null) {
                try {
                    sets = ReferenceDataSet.folders(Path.of(golden));
                } catch (IOException e) {
                    throw new IllegalArgumentException("--golden " + golden + ": " + e.getMessage(), e);
                }
            }
            ModelSource source = source(model);
            try (LocalModel local = source.fetch()) {
                String name = local.path().getFileName().toString();
                String lower = name.toLowerCase(Locale.ROOT);
                if (!lower.endsWith(".onnx") && !lower.endsWith(".ort")) {
                    throw new IllegalArgumentException("Model file " + source.uri() + " is named '" + name
                            + "': publish keeps the file name, and a version folder's model is its .onnx or .ort"
                            + " file; rename it");
                }
                if (!local.externalData().isEmpty()) {
                    throw new IllegalArgumentException("Model file " + source.uri() + " refers to external data "
                            + local.externalData() + ": publish copies a single model file; embed the weights"
                            + " in the model (or publish the folder yourself)");
                }
                // The checks and the copy see the same bytes: later reads are pinned to this fetch's digest.
                ModelSource checked = source.sha256().isPresent() ? source : source.withSha256(local.sha256());
                ModelChecks.check(checked);
                out().println("OK: " + source.uri() + " loads in ONNX Runtime");
                if (golden != null) {
                    out().println("golden vectors in " + golden + ":");
                    if (verify(checked, golden, DriftTolerance.of(rtol, atol), out()) != OK) {
                        spec.commandLine()
                                .getErr()
                                .println("FAILED: " + source.uri() + " does not pass the golden vectors in " + golden
                                        + "; nothing published to " + target);
                        return FAILED;
                    }
                }
                Publisher.Published p =
                        Publisher.publish(fs, folder, version, local.path(), local.modelFileSha256(), sets);
                out().println("published " + p.folder + " (" + p.how + ")");
                out().println("  " + p.model + "  " + p.bytes + " bytes  sha256 " + p.sha256);
                out().println("  " + p.model + ".sha256");
                for (String set : p.dataSets) {
                    out().println("  " + new org.apache.flink.core.fs.Path(p.folder, set) + "/");
                }
                return OK;
            }
        }
    }

    private static ModelSource source(String arg) {
        int pin = arg.lastIndexOf("@sha256:");
        return pin < 0
                ? ModelSource.of(arg)
                : ModelSource.of(arg.substring(0, pin)).withSha256(arg.substring(pin + 8));
    }

    private static int inspect(ModelSource model, String providers, PrintStream out) throws Exception {
        ProviderChain chain = ProviderChain.parse(providers);
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

    private static int optimize(
            ModelSource model, String target, String levelName, String formatName, PrintStream out, PrintWriter err)
            throws Exception {
        SessionSettings.OptimizationLevel level = SessionSettings.OptimizationLevel.valueOf(
                levelName.toUpperCase(Locale.ROOT).replace("DISABLE", "DISABLE_ALL"));
        SessionSettings.ModelFileFormat format = SessionSettings.ModelFileFormat.valueOf(
                (formatName != null ? formatName : target.endsWith(".ort") ? "ort" : "onnx").toUpperCase(Locale.ROOT));
        String warning = ModelChecks.optimize(model, Path.of(target), level, format);
        if (warning != null) {
            err.println("warning: " + warning);
        }
        out.println("wrote " + Path.of(target).toAbsolutePath() + " (" + format + ", level " + level + ")");
        return OK;
    }

    private static int verify(ModelSource model, String dir, DriftTolerance tolerance, PrintStream out)
            throws Exception {
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
