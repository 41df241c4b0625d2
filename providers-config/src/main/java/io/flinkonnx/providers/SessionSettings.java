package io.flinkonnx.providers;

import java.io.Serializable;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.configuration.Configuration;

/**
 * ONNX Runtime session settings other than execution providers, immutable, built by {@link #builder()}.
 *
 * <p>Defaults suit a Flink TaskManager: one intra-op thread and one inter-op thread per session, since
 * each slot has its own session and the TaskManager already runs one task thread per slot; more threads
 * per session oversubscribe the cores.
 *
 * <pre>{@code
 * SessionSettings settings = SessionSettings.builder()
 *         .optimizationLevel(SessionSettings.OptimizationLevel.ALL)
 *         .intraOpThreads(2)
 *         .saveOptimizedModel("/tmp/model.opt.ort", SessionSettings.ModelFileFormat.ORT)
 *         .build();
 * }</pre>
 *
 * <p>Models whose graph carries pre- or post-processing as ONNX Runtime Extensions custom operators (domain
 * {@code ai.onnx.contrib}: tokenizers, string and regex ops) need {@link Builder#onnxRuntimeExtensions(boolean)}
 * and {@code com.microsoft.onnxruntime:onnxruntime-extensions} on the classpath.
 */
@PublicEvolving
public final class SessionSettings implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Configuration key prefix read by {@link #fromConfiguration}. */
    public static final String CONFIG_PREFIX = "onnx.session.";

    /** ORT's graph optimization levels. */
    public enum OptimizationLevel {
        DISABLE_ALL,
        BASIC,
        EXTENDED,
        ALL
    }

    /** ORT's execution modes: operators one at a time, or independent branches in parallel. */
    public enum ExecutionMode {
        SEQUENTIAL,
        PARALLEL
    }

    /**
     * Whose threads a session's operators run on. {@code AUTO}: the process's global pool when ORT's
     * environment was created with one (the TaskManager-wide system property
     * {@code flinkonnx.ort.global-pool-threads}), else the session's own. {@code PER_SESSION}: always the
     * session's own ({@link #intraOpThreads}). {@code GLOBAL}: always the process's pool; creating the session
     * fails, naming the property, when ORT's environment already exists without one.
     */
    public enum ThreadPool {
        AUTO,
        PER_SESSION,
        GLOBAL
    }

    /** Formats ORT can save an optimized model in. */
    public enum ModelFileFormat {
        ONNX,
        ORT
    }

    private final OptimizationLevel optimizationLevel;
    private final int intraOpThreads;
    private final int interOpThreads;
    private final boolean cpuMemoryArena;
    private final boolean memoryPatternOptimization;
    private final ExecutionMode executionMode;
    private final Map<String, String> configEntries;
    private final String optimizedModelPath;
    private final ModelFileFormat optimizedModelFormat;
    private final boolean onnxRuntimeExtensions;
    private final ThreadPool threadPool;

    private SessionSettings(Builder b) {
        this.threadPool = b.threadPool;
        this.optimizationLevel = b.optimizationLevel;
        this.intraOpThreads = b.intraOpThreads;
        this.interOpThreads = b.interOpThreads;
        this.cpuMemoryArena = b.cpuMemoryArena;
        this.memoryPatternOptimization = b.memoryPatternOptimization;
        this.executionMode = b.executionMode;
        this.configEntries = Collections.unmodifiableMap(new TreeMap<>(b.configEntries));
        this.optimizedModelPath = b.optimizedModelPath;
        this.optimizedModelFormat = b.optimizedModelFormat;
        this.onnxRuntimeExtensions = b.onnxRuntimeExtensions;
    }

    /** The defaults: optimization ALL, 1 intra-op and 1 inter-op thread, arena on, sequential. */
    public static SessionSettings defaults() {
        return builder().build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Reads {@code onnx.session.*} keys: {@code optimization-level} (DISABLE_ALL, BASIC, EXTENDED, ALL),
     * {@code intra-op-threads}, {@code inter-op-threads}, {@code cpu-memory-arena}, {@code memory-pattern},
     * {@code execution-mode} (SEQUENTIAL, PARALLEL), {@code optimized-model-path},
     * {@code optimized-model-format} (ONNX, ORT), {@code onnxruntime-extensions} (true, false),
     * {@code thread-pool} (AUTO, PER_SESSION, GLOBAL) and {@code config.<ort key>} for ORT config entries.
     */
    public static SessionSettings fromConfiguration(Configuration config) {
        Builder b = builder();
        for (Map.Entry<String, String> e : config.toMap().entrySet()) {
            if (!e.getKey().startsWith(CONFIG_PREFIX)) {
                continue;
            }
            String key = e.getKey().substring(CONFIG_PREFIX.length());
            String v = e.getValue().trim();
            if (key.startsWith("config.")) {
                b.configEntry(key.substring("config.".length()), v);
                continue;
            }
            switch (key) {
                case "optimization-level":
                    b.optimizationLevel(parseEnum(OptimizationLevel.class, key, v));
                    break;
                case "intra-op-threads":
                    b.intraOpThreads(parseInt(key, v));
                    break;
                case "inter-op-threads":
                    b.interOpThreads(parseInt(key, v));
                    break;
                case "cpu-memory-arena":
                    b.cpuMemoryArena(Boolean.parseBoolean(v));
                    break;
                case "memory-pattern":
                    b.memoryPatternOptimization(Boolean.parseBoolean(v));
                    break;
                case "execution-mode":
                    b.executionMode(parseEnum(ExecutionMode.class, key, v));
                    break;
                case "optimized-model-path":
                    b.optimizedModelPath = v;
                    break;
                case "optimized-model-format":
                    b.optimizedModelFormat = parseEnum(ModelFileFormat.class, key, v);
                    break;
                case "onnxruntime-extensions":
                    b.onnxRuntimeExtensions(parseBoolean(key, v));
                    break;
                case "thread-pool":
                    b.threadPool(parseEnum(ThreadPool.class, key, v));
                    break;
                default:
                    throw new IllegalArgumentException("Unknown session setting '" + e.getKey() + "'. Valid: "
                            + CONFIG_PREFIX + "{optimization-level, intra-op-threads, inter-op-threads,"
                            + " cpu-memory-arena, memory-pattern, execution-mode, optimized-model-path,"
                            + " optimized-model-format, onnxruntime-extensions, thread-pool, config.<key>}.");
            }
        }
        return b.build();
    }

    public OptimizationLevel optimizationLevel() {
        return optimizationLevel;
    }

    public int intraOpThreads() {
        return intraOpThreads;
    }

    public int interOpThreads() {
        return interOpThreads;
    }

    public boolean cpuMemoryArena() {
        return cpuMemoryArena;
    }

    public boolean memoryPatternOptimization() {
        return memoryPatternOptimization;
    }

    public ExecutionMode executionMode() {
        return executionMode;
    }

    /** ORT session config entries ({@code session.*} keys), sorted. */
    public Map<String, String> configEntries() {
        return configEntries;
    }

    /** Where ORT writes the optimized model, or null. */
    public String optimizedModelPath() {
        return optimizedModelPath;
    }

    public ModelFileFormat optimizedModelFormat() {
        return optimizedModelFormat;
    }

    /**
     * Whether the ONNX Runtime Extensions custom operators are registered with the session.
     *
     * @return true when sessions register {@code onnxruntime-extensions}' operators (default false)
     */
    public boolean onnxRuntimeExtensions() {
        return onnxRuntimeExtensions;
    }

    /** Whose threads the session runs on (default {@link ThreadPool#AUTO}). */
    public ThreadPool threadPool() {
        return threadPool;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof SessionSettings)) {
            return false;
        }
        return toString().equals(o.toString());
    }

    @Override
    public int hashCode() {
        return toString().hashCode();
    }

    /** A stable text of every setting (part of the key under which sessions are shared). */
    @Override
    public String toString() {
        return "SessionSettings{optimization=" + optimizationLevel + ", intraOpThreads=" + intraOpThreads
                + ", interOpThreads=" + interOpThreads + ", cpuMemoryArena=" + cpuMemoryArena + ", memoryPattern="
                + memoryPatternOptimization + ", executionMode=" + executionMode + ", config=" + configEntries
                + (optimizedModelPath == null ? "" : ", save=" + optimizedModelPath + " as " + optimizedModelFormat)
                + (onnxRuntimeExtensions ? ", customOps=onnxruntime-extensions" : "")
                + (threadPool == ThreadPool.AUTO ? "" : ", threadPool=" + threadPool)
                + "}";
    }

    private static int parseInt(String key, String v) {
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    "Session setting " + CONFIG_PREFIX + key + " must be an integer, got '" + v + "'");
        }
    }

    private static boolean parseBoolean(String key, String v) {
        if (!v.equalsIgnoreCase("true") && !v.equalsIgnoreCase("false")) {
            throw new IllegalArgumentException(
                    "Session setting " + CONFIG_PREFIX + key + " must be true or false, got '" + v + "'");
        }
        return Boolean.parseBoolean(v);
    }

    private static <E extends Enum<E>> E parseEnum(Class<E> type, String key, String v) {
        try {
            return Enum.valueOf(type, v.toUpperCase(Locale.ROOT).replace('-', '_'));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("Session setting " + CONFIG_PREFIX + key + " must be one of "
                    + Arrays.toString(type.getEnumConstants()) + ", got '" + v + "'");
        }
    }

    /** Builder of {@link SessionSettings}; every setter validates at once. */
    public static final class Builder {
        private OptimizationLevel optimizationLevel = OptimizationLevel.ALL;
        private int intraOpThreads = 1;
        private int interOpThreads = 1;
        private boolean cpuMemoryArena = true;
        private boolean memoryPatternOptimization = true;
        private ExecutionMode executionMode = ExecutionMode.SEQUENTIAL;
        private final Map<String, String> configEntries = new LinkedHashMap<>();
        private String optimizedModelPath;
        private ModelFileFormat optimizedModelFormat = ModelFileFormat.ONNX;
        private boolean onnxRuntimeExtensions;
        private ThreadPool threadPool = ThreadPool.AUTO;

        private Builder() {}

        /**
         * Whose threads the session runs on: see {@link ThreadPool}. With the process's pool, the session's own
         * {@code intraOpThreads}/{@code interOpThreads} are not used.
         */
        public Builder threadPool(ThreadPool pool) {
            this.threadPool = Objects.requireNonNull(pool, "threadPool");
            return this;
        }

        public Builder optimizationLevel(OptimizationLevel level) {
            this.optimizationLevel = Objects.requireNonNull(level, "optimizationLevel");
            return this;
        }

        /** Threads ORT uses inside one operator; >= 1 (0, ORT's "one per core", oversubscribes a TaskManager). */
        public Builder intraOpThreads(int threads) {
            checkThreads("intraOpThreads", threads);
            this.intraOpThreads = threads;
            return this;
        }

        /** Threads ORT uses across independent operators in PARALLEL mode; >= 1. */
        public Builder interOpThreads(int threads) {
            checkThreads("interOpThreads", threads);
            this.interOpThreads = threads;
            return this;
        }

        public Builder cpuMemoryArena(boolean enabled) {
            this.cpuMemoryArena = enabled;
            return this;
        }

        public Builder memoryPatternOptimization(boolean enabled) {
            this.memoryPatternOptimization = enabled;
            return this;
        }

        public Builder executionMode(ExecutionMode mode) {
            this.executionMode = Objects.requireNonNull(mode, "executionMode");
            return this;
        }

        /** An ORT session config entry, e.g. {@code session.disable_cpu_ep_fallback = 1}. */
        public Builder configEntry(String key, String value) {
            if (key == null || key.isBlank()) {
                throw new IllegalArgumentException("ORT config entry key must not be empty");
            }
            configEntries.put(key, Objects.requireNonNull(value, "value of " + key));
            return this;
        }

        /**
         * Makes ORT write the optimized graph to {@code path} when the session is created, as ONNX or as
         * ORT format (a {@code .ort} file loadable later; at level ALL it may be specific to this CPU).
         */
        public Builder saveOptimizedModel(String path, ModelFileFormat format) {
            if (path == null || path.isBlank()) {
                throw new IllegalArgumentException("Optimized model path must not be empty");
            }
            this.optimizedModelPath = path;
            this.optimizedModelFormat = Objects.requireNonNull(format, "format");
            return this;
        }

        /**
         * Registers the ONNX Runtime Extensions custom operators (domain {@code ai.onnx.contrib}: BERT, GPT-2 and
         * SentencePiece tokenizers, string, regex and vision pre-processing) with every session, so that models
         * carrying them in their graph load and take STRING inputs directly. Needs
         * {@code com.microsoft.onnxruntime:onnxruntime-extensions} (0.13.0; natives for linux-x64, osx-x64 and
         * win-x64) on the classpath, beside {@code onnxruntime}: without it the session fails to open, naming the
         * artifact. Sessions with and without the extensions are never shared.
         *
         * <pre>{@code
         * SessionSettings settings = SessionSettings.builder().onnxRuntimeExtensions(true).build();
         * }</pre>
         *
         * @param enabled true to register the extensions' operators (default false)
         * @return this builder
         */
        public Builder onnxRuntimeExtensions(boolean enabled) {
            this.onnxRuntimeExtensions = enabled;
            return this;
        }

        public SessionSettings build() {
            return new SessionSettings(this);
        }

        private static void checkThreads(String name, int threads) {
            if (threads < 1) {
                throw new IllegalArgumentException(name + " must be >= 1, got " + threads
                        + " (ORT's 0 means one thread per core, which oversubscribes a TaskManager running one"
                        + " session per slot)");
            }
        }
    }
}
