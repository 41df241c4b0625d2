package io.flinkonnx.flink.session;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtLoggingLevel;
import io.flinkonnx.model.RuntimeLimits;
import java.util.Map;
import org.apache.flink.annotation.Internal;

/** The ONNX Runtime in this process: its environment, version, and what models it can read. */
@Internal
public final class OrtRuntime {
    private OrtRuntime() {}

    /**
     * Command lines from this many bytes on are refused under ORT 1.29 with telemetry on: its environment
     * creation crashed the JVM (SIGSEGV) from 3,981 bytes of {@code /proc/self/cmdline} here; a margin below
     * that, since the exact limit is ORT's and not documented.
     */
    static final int TELEMETRY_CRASH_CMDLINE_BYTES = 3_072;

    /** The variable that turns ORT 1.29's POSIX telemetry off (and with it the crash). */
    static final String DISABLE_TELEMETRY = "ORT_DISABLE_TELEMETRY";

    private static volatile boolean checked;

    /**
     * The TaskManager-wide switch to ORT's global thread pool: the system property (e.g. in
     * {@code env.java.opts.taskmanager}) naming the pool's intra-op threads. Read once, when this class creates
     * ORT's environment; sessions then run on that pool unless their settings say {@code PER_SESSION}.
     */
    public static final String GLOBAL_POOL_THREADS_PROPERTY = "flinkonnx.ort.global-pool-threads";

    /** The same switch as an environment variable, for deployments that set variables rather than JVM flags. */
    public static final String GLOBAL_POOL_THREADS_ENV = "FLINK_ONNX_ORT_GLOBAL_POOL_THREADS";

    /** Intra-op threads of the global pool: -1 before this class made the environment, 0 for none. */
    private static volatile int globalPoolThreads = -1;

    /**
     * ORT's process-wide environment; never closed (ORT's shutdown hook owns it). The first call creates it,
     * with a global thread pool when {@link #GLOBAL_POOL_THREADS_PROPERTY} (or {@link #GLOBAL_POOL_THREADS_ENV})
     * names one.
     *
     * @throws IllegalStateException where creating it would crash the process (ORT 1.29 on Linux with a
     *     long command line and telemetry on), naming the fix
     */
    public static OrtEnvironment env() {
        checkOnce();
        if (globalPoolThreads < 0) {
            createEnvironment(configuredGlobalPoolThreads(), false);
        }
        return OrtEnvironment.getEnvironment();
    }

    /**
     * Intra-op threads of the process's global pool, 0 when the environment has none (it was created without
     * the property, or by other code before this class).
     */
    public static int globalPoolThreads() {
        env();
        return Math.max(0, globalPoolThreads);
    }

    /**
     * The environment, made to have a global thread pool: created with one (the property's threads, else 1)
     * when it does not exist yet.
     *
     * @throws IllegalStateException when the environment already exists without a global pool, naming the
     *     property that creates it with one
     */
    public static OrtEnvironment envWithGlobalPool() {
        checkOnce();
        if (globalPoolThreads < 0) {
            createEnvironment(Math.max(1, configuredGlobalPoolThreads()), true);
        }
        if (globalPoolThreads == 0) {
            throw new IllegalStateException("A session asked for ONNX Runtime's global thread pool (threadPool"
                    + " GLOBAL), but ORT's environment in this process was created without one (ORT creates it once"
                    + " per process, and the pool only with it). Set -D" + GLOBAL_POOL_THREADS_PROPERTY + "=<threads>"
                    + " (or " + GLOBAL_POOL_THREADS_ENV + ") in the TaskManager's JVM (env.java.opts.taskmanager) so"
                    + " that the first ONNX model creates it with one, or use threadPool AUTO or PER_SESSION.");
        }
        return OrtEnvironment.getEnvironment();
    }

    private static synchronized void createEnvironment(int threads, boolean required) {
        if (globalPoolThreads >= 0) {
            return;
        }
        if (threads <= 0) {
            OrtEnvironment.getEnvironment();
            globalPoolThreads = 0;
            return;
        }
        try (OrtEnvironment.ThreadingOptions options = new OrtEnvironment.ThreadingOptions()) {
            options.setGlobalIntraOpNumThreads(threads);
            options.setGlobalInterOpNumThreads(1);
            OrtEnvironment.getEnvironment(
                    OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, OrtEnvironment.DEFAULT_NAME, options);
            globalPoolThreads = threads;
        } catch (IllegalStateException e) {
            // ORT's environment existed already (other code made it first): it has no pool of ours.
            globalPoolThreads = 0;
            if (!required) {
                org.slf4j.LoggerFactory.getLogger(OrtRuntime.class)
                        .warn(
                                "{}={} asked for ONNX Runtime's global thread pool, but ORT's environment was created"
                                        + " before (by other code in this process) without one: sessions use their"
                                        + " own threads",
                                GLOBAL_POOL_THREADS_PROPERTY,
                                threads);
            }
        } catch (ai.onnxruntime.OrtException e) {
            throw new IllegalStateException(
                    "ONNX Runtime could not create its environment with a global pool of " + threads + " threads: "
                            + e.getMessage(),
                    e);
        }
    }

    /** The global pool's threads the property or variable names; 0 when neither is set. */
    static int configuredGlobalPoolThreads() {
        String v = System.getProperty(GLOBAL_POOL_THREADS_PROPERTY);
        String from = GLOBAL_POOL_THREADS_PROPERTY;
        if (v == null || v.isBlank()) {
            v = System.getenv(GLOBAL_POOL_THREADS_ENV);
            from = GLOBAL_POOL_THREADS_ENV;
        }
        if (v == null || v.isBlank()) {
            return 0;
        }
        try {
            int threads = Integer.parseInt(v.trim());
            if (threads < 0) {
                throw new NumberFormatException();
            }
            return threads;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    from + " must be the global pool's number of threads (0 for none, 1 or more), got '" + v + "'");
        }
    }

    /**
     * Creates ORT's environment logging only at {@code level} and above, for a process that reports ORT's
     * errors itself (the CLI: ORT writes its log to the native stderr, where an expected failure, such as a
     * warm-up a model cannot run, reads like a problem). Call before anything else touches ORT; once the
     * environment exists its level is fixed.
     *
     * @throws IllegalStateException as {@link #env()}
     */
    public static OrtEnvironment env(OrtLoggingLevel level) {
        checkOnce();
        OrtEnvironment env = OrtEnvironment.getEnvironment(level);
        synchronized (OrtRuntime.class) {
            if (globalPoolThreads < 0) {
                globalPoolThreads = 0;
            }
        }
        return env;
    }

    private static void checkOnce() {
        if (!checked) {
            checkProcessCanCreateEnvironment(
                    ortJarVersion(), System.getProperty("os.name"), System.getenv(DISABLE_TELEMETRY), cmdlineBytes());
            checked = true;
        }
    }

    /**
     * ORT 1.29.0 added telemetry on Linux (a 1DS client created with the environment), and that code
     * crashes the JVM with SIGSEGV when the process command line is long, as a TaskManager's class path
     * makes it. A crash takes every job of the TaskManager with it and leaves no Java stack trace, so refuse
     * with the cause and the fix instead.
     */
    static void checkProcessCanCreateEnvironment(
            String ortVersion, String osName, String disableTelemetry, long cmdlineBytes) {
        // An unknown version (ORT shaded into a fat jar, whose manifest is not ORT's) may be 1.29: fail closed.
        boolean affected = (ortVersion == null || ortVersion.startsWith("1.29."))
                && osName != null
                && osName.toLowerCase(java.util.Locale.ROOT).contains("linux");
        if (affected && !"1".equals(disableTelemetry) && cmdlineBytes >= TELEMETRY_CRASH_CMDLINE_BYTES) {
            throw new IllegalStateException("ONNX Runtime "
                    + (ortVersion == null
                            ? "(version unknown: its jar's manifest is not ORT's; 1.29.0 does)"
                            : ortVersion)
                    + " crashes this process (SIGSEGV in its"
                    + " telemetry, when its environment is created) with a command line this long (" + cmdlineBytes
                    + " bytes; it crashed from about 4,000). Set " + DISABLE_TELEMETRY + "=1 in the environment of"
                    + " this JVM (the TaskManager's: Docker ENV, Kubernetes env, or exported before the process"
                    + " starts), or use ONNX Runtime 1.28.0 or 1.24.2.");
        }
    }

    /** The ORT jar's version from its manifest: readable without loading the native library. */
    static String ortJarVersion() {
        Package p = OrtEnvironment.class.getPackage();
        return p == null ? null : p.getImplementationVersion();
    }

    /** The length of this process's command line, or 0 where {@code /proc} does not tell. */
    static long cmdlineBytes() {
        try {
            return java.nio.file.Files.readAllBytes(java.nio.file.Path.of("/proc/self/cmdline")).length;
        } catch (java.io.IOException | RuntimeException e) {
            return 0;
        }
    }

    public static String version() {
        return env().getVersion();
    }

    /**
     * The IR/opset limits of this ORT version, measured for 1.23, 1.24 and 1.29 (guarded by
     * {@code ModelLoadingTest}, which loads a model at each limit and one past it in the real ORT); null
     * for versions not measured, whose own load error is then reported.
     */
    public static RuntimeLimits limits() {
        return limitsOf(version());
    }

    public static RuntimeLimits limitsOf(String version) {
        String[] parts = version.split("\\.");
        if (parts.length < 2) {
            return null;
        }
        String name = "ONNX Runtime " + version;
        switch (parts[0] + "." + parts[1]) {
            case "1.29":
                return new RuntimeLimits(name, 13, Map.of("", 26L, "ai.onnx.ml", 5L));
            case "1.24":
                return new RuntimeLimits(name, 13, Map.of("", 25L, "ai.onnx.ml", 5L));
            case "1.23":
                return new RuntimeLimits(name, 11, Map.of("", 23L, "ai.onnx.ml", 5L));
            default:
                return null;
        }
    }
}
