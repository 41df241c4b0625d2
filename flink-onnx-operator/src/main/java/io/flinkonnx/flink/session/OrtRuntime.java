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
     * ORT's process-wide environment; never closed (ORT's shutdown hook owns it).
     *
     * @throws IllegalStateException where creating it would crash the process (ORT 1.29 on Linux with a
     *     long command line and telemetry on), naming the fix
     */
    public static OrtEnvironment env() {
        checkOnce();
        return OrtEnvironment.getEnvironment();
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
        return OrtEnvironment.getEnvironment(level);
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
