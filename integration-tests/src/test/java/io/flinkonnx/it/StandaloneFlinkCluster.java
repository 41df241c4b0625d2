package io.flinkonnx.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Flink standalone session cluster made of real processes, started the way Flink's scripts start them:
 * a JobManager ({@code StandaloneSessionClusterEntrypoint}) and TaskManagers ({@code TaskManagerRunner}), each
 * a JVM of its own on the classpath of a Flink {@code lib/} folder, with the JVM flags and dynamic properties
 * that {@code BashJavaUtils} derives from {@code config.yaml} (what {@code jobmanager.sh}/{@code
 * taskmanager.sh} do). Jobs are submitted with Flink's own CLI ({@code CliFrontend run}) in a JVM of its own.
 *
 * <p>Every process started is destroyed (SIGKILL) and waited for on {@link #close()}, and by a JVM shutdown
 * hook if the test JVM exits first.
 */
final class StandaloneFlinkCluster implements AutoCloseable {
    /** What Flink's config.yaml passes to every Flink JVM on Java 17 ({@code env.java.opts.all}). */
    static final List<String> FLINK_JVM_OPENS = List.of(
            "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
            "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
            "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "--add-opens=java.base/java.net=ALL-UNNAMED",
            "--add-opens=java.base/java.io=ALL-UNNAMED",
            "--add-opens=java.base/java.nio=ALL-UNNAMED",
            "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
            "--add-opens=java.base/java.text=ALL-UNNAMED",
            "--add-opens=java.base/java.time=ALL-UNNAMED",
            "--add-opens=java.base/java.util=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED");

    /** The reporter's name in config.yaml ({@code metrics.reporter.<name>.*}), as in Flink's documentation. */
    static final String PROMETHEUS_REPORTER = "prom";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");

    private final List<Path> libs;
    private final Path home;
    private final Path conf;
    private final Path logs;
    private final int restPort;
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private final List<Process> processes = new CopyOnWriteArrayList<>();
    private final Thread shutdownHook = new Thread(this::destroyAll, "standalone-cluster-cleanup");
    /** Process name -> the port its Prometheus reporter serves on (empty unless {@link #enablePrometheusReporter}). */
    private final Map<String, Integer> prometheusPorts = new java.util.concurrent.ConcurrentHashMap<>();

    private boolean prometheus;
    private List<String> tmJvmFlags;
    private List<String> tmDynamicProperties;
    private int taskManagersStarted;

    /**
     * Writes {@code home/conf/config.yaml} (+ log4j) for a cluster whose TaskManagers have {@code slots} slots each,
     * all on 127.0.0.1; starts nothing yet. Its {@code lib/} is made of several folders (the first one Flink's, the
     * others what a user drops in beside it): every JVM's classpath is {@code dir/*} of each, in order.
     */
    StandaloneFlinkCluster(List<Path> libs, Path home, int slots) throws IOException {
        this.libs = libs.stream().map(Path::toAbsolutePath).toList();
        Path lib = this.libs.get(0);
        this.home = home.toAbsolutePath();
        this.conf = this.home.resolve("conf");
        this.logs = this.home.resolve("log");
        deleteRecursively(this.home);
        Files.createDirectories(conf);
        Files.createDirectories(logs);
        try (var jars = Files.list(lib)) {
            if (jars.noneMatch(j -> j.getFileName().toString().startsWith("flink-runtime-"))) {
                throw new IllegalStateException("No Flink lib/ at " + lib + " (mvn pre-integration-test copies it)");
            }
        }
        this.restPort = freePort();
        String checkpoints = this.home.resolve("checkpoints").toUri().toString();
        String yaml = String.join(
                "\n",
                "# Written by StandaloneClusterIT: one JobManager and TaskManagers on loopback only.",
                "jobmanager.rpc.address: 127.0.0.1",
                "jobmanager.rpc.port: " + freePort(),
                "jobmanager.bind-host: 127.0.0.1",
                "jobmanager.memory.process.size: 1g",
                "taskmanager.host: 127.0.0.1",
                "taskmanager.bind-host: 127.0.0.1",
                "taskmanager.numberOfTaskSlots: " + slots,
                "taskmanager.memory.process.size: 1280m",
                "taskmanager.memory.managed.fraction: 0.1",
                "rest.address: 127.0.0.1",
                "rest.bind-address: 127.0.0.1",
                "rest.port: " + restPort,
                "execution.checkpointing.interval: 1 s",
                "execution.checkpointing.dir: " + checkpoints,
                "restart-strategy.type: fixed-delay",
                "restart-strategy.fixed-delay.attempts: 20",
                "restart-strategy.fixed-delay.delay: 500 ms",
                // A SIGKILLed TaskManager is noticed by failed heartbeat RPCs (threshold 2), well before this.
                "heartbeat.interval: 1000",
                "heartbeat.timeout: 20000",
                // What the README asks of every cluster: ORT in lib/, loaded parent-first.
                "classloader.parent-first-patterns.additional: ai.onnxruntime.",
                "metrics.fetcher.update-interval: 500",
                "");
        Files.writeString(conf.resolve("config.yaml"), yaml);
        Files.writeString(
                conf.resolve("log4j.properties"),
                String.join(
                        "\n",
                        "rootLogger.level = INFO",
                        "rootLogger.appenderRef.file.ref = file",
                        "appender.file.type = File",
                        "appender.file.name = file",
                        "appender.file.fileName = ${sys:log.file}",
                        "appender.file.layout.type = PatternLayout",
                        "appender.file.layout.pattern = %d{HH:mm:ss,SSS} %-5p [%t] %c - %m%n",
                        "logger.kafkaconfig.name = org.apache.kafka.common.config.AbstractConfig",
                        "logger.kafkaconfig.level = WARN",
                        "logger.kafkaapp.name = org.apache.kafka.common.utils.AppInfoParser",
                        "logger.kafkaapp.level = WARN",
                        // As docker/Dockerfile does: Flink's metric groups log through this logger, and at INFO the
                        // Kafka clients' metrics, registered again under names already taken, flood the log with
                        // WARN "Name collision".
                        "logger.metricgroup.name = org.apache.flink.metrics.MetricGroup",
                        "logger.metricgroup.level = ERROR",
                        ""));
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    Path home() {
        return home;
    }

    /**
     * Turns on Flink's Prometheus reporter ({@code flink-metrics-prometheus}, in {@code lib/}) in every process
     * started from now on, as a user's config.yaml does; each process serves on a free port of its own (passed as
     * a dynamic property: processes on one host cannot share a port), see {@link #prometheusPort}. Label values
     * are kept as they are (versions such as {@code fraud-mlp} or {@code 1.2.0} stay readable).
     */
    void enablePrometheusReporter() throws IOException {
        Files.writeString(
                conf.resolve("config.yaml"),
                String.join(
                        "\n",
                        "metrics.reporter." + PROMETHEUS_REPORTER + ".factory.class: "
                                + "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
                        "metrics.reporter." + PROMETHEUS_REPORTER + ".filterLabelValueCharacters: false",
                        ""),
                java.nio.file.StandardOpenOption.APPEND);
        prometheus = true;
    }

    /** The port the Prometheus reporter of process {@code name} ({@code jobmanager}, {@code tm-N}) serves on. */
    int prometheusPort(String name) {
        Integer port = prometheusPorts.get(name);
        if (port == null) {
            throw new IllegalStateException("No Prometheus reporter in " + name + " (enablePrometheusReporter first)");
        }
        return port;
    }

    /** {@code -D metrics.reporter.prom.port=P} for process {@code name}, with a free port, when the reporter is on. */
    private List<String> prometheusPortProperty(String name) throws IOException {
        if (!prometheus) {
            return List.of();
        }
        int port = freePort();
        prometheusPorts.put(name, port);
        return List.of("-D", "metrics.reporter." + PROMETHEUS_REPORTER + ".port=" + port);
    }

    Path log(String name) {
        return logs.resolve(name + ".log");
    }

    /** Starts the JobManager process (its REST endpoint answers later: {@link #awaitTaskManagers}). */
    Process startJobManager() throws Exception {
        List<List<String>> params = bashJavaUtils("GET_JM_RESOURCE_PARAMS");
        List<String> args = new ArrayList<>(List.of(
                "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                "--configDir",
                conf.toString()));
        args.addAll(params.get(1));
        args.addAll(prometheusPortProperty("jobmanager"));
        return start("jobmanager", params.get(0), args, Map.of());
    }

    /** Starts one more TaskManager process with resource id {@code tm-N}; returns it and its id. */
    synchronized Map.Entry<String, Process> startTaskManager() throws Exception {
        if (tmJvmFlags == null) {
            List<List<String>> params = bashJavaUtils("GET_TM_RESOURCE_PARAMS");
            tmJvmFlags = params.get(0);
            tmDynamicProperties = params.get(1);
        }
        String id = "tm-" + (++taskManagersStarted);
        List<String> args = new ArrayList<>(
                List.of("org.apache.flink.runtime.taskexecutor.TaskManagerRunner", "--configDir", conf.toString()));
        args.addAll(tmDynamicProperties);
        args.addAll(List.of("-D", "taskmanager.resource-id=" + id));
        args.addAll(prometheusPortProperty(id));
        return Map.entry(id, start(id, tmJvmFlags, args, Map.of()));
    }

    /**
     * {@code flink run -d JAR ARGS} against this cluster's REST endpoint, in a client JVM of its own with
     * {@code FLINK_CONF_DIR} set, as a user would; returns the job id the client printed.
     */
    String submit(Path jar, String logName, List<String> jobArgs) throws Exception {
        List<String> args = new ArrayList<>(List.of(
                "org.apache.flink.client.cli.CliFrontend",
                "run",
                "-d",
                "-m",
                "127.0.0.1:" + restPort,
                jar.toAbsolutePath().toString()));
        args.addAll(jobArgs);
        Process client = start(logName, List.of("-Xmx256m"), args, Map.of("FLINK_CONF_DIR", conf.toString()));
        Path out = log(logName + ".out");
        if (!client.waitFor(90, TimeUnit.SECONDS)) {
            throw new IllegalStateException("flink run did not return in 90 s; see " + out);
        }
        processes.remove(client);
        String printed = Files.readString(out);
        Matcher m = JOB_ID.matcher(printed);
        if (client.exitValue() != 0 || !m.find()) {
            throw new IllegalStateException("flink run exited " + client.exitValue() + ":\n" + printed);
        }
        return m.group(1);
    }

    /**
     * Starts {@code mainAndArgs} in a client JVM of its own with {@code FLINK_CONF_DIR} set to this cluster's
     * conf (as Flink's scripts do), on this cluster's {@code lib/} plus {@code extraClasspath} (e.g. the SQL Client
     * from {@code opt/}); its output goes to {@link #log}{@code (name + ".out")}.
     */
    Process startClient(String name, List<Path> extraClasspath, List<String> mainAndArgs) throws IOException {
        List<String> cp = new ArrayList<>();
        extraClasspath.forEach(p -> cp.add(p.toAbsolutePath().toString()));
        List<String> args = new ArrayList<>(List.of("-Xmx384m", "-classpath", classpath(cp)));
        args.addAll(mainAndArgs);
        return start(name, List.of(), args, Map.of("FLINK_CONF_DIR", conf.toString()));
    }

    /** Forgets a process that ended by itself (so close() does not wait for it). */
    void forget(Process p) {
        processes.remove(p);
    }

    /** Polls the REST API until it reports {@code taskManagers} TaskManagers and {@code slots} slots. */
    void awaitTaskManagers(int taskManagers, int slots, Duration timeout) {
        await("REST reports " + taskManagers + " TaskManagers / " + slots + " slots", timeout, () -> {
            JsonNode o = getOrNull("/overview");
            return o != null
                    && o.path("taskmanagers").asInt() == taskManagers
                    && o.path("slots-total").asInt() == slots;
        });
    }

    String jobState(String jobId) {
        JsonNode job = getOrNull("/jobs/" + jobId);
        return job == null ? "UNKNOWN" : job.path("state").asText();
    }

    void awaitJobState(String jobId, String state, Duration timeout) {
        await("job " + jobId + " " + state, timeout, () -> state.equals(jobState(jobId)));
    }

    /** Whether every task of the job is RUNNING (the job's state alone says RUNNING while tasks deploy). */
    boolean allTasksRunning(String jobId) {
        JsonNode job = getOrNull("/jobs/" + jobId);
        if (job == null || !"RUNNING".equals(job.path("state").asText())) {
            return false;
        }
        for (JsonNode v : job.path("vertices")) {
            if (v.path("tasks").path("RUNNING").asInt() != v.path("parallelism").asInt()) {
                return false;
            }
        }
        return true;
    }

    /** Cancels the job through the REST API ({@code PATCH /jobs/ID?mode=cancel}) and waits for CANCELED. */
    void cancel(String jobId, Duration timeout) throws Exception {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(uri("/jobs/" + jobId + "?mode=cancel"))
                        .method("PATCH", HttpRequest.BodyPublishers.noBody())
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 202) {
            throw new IllegalStateException("cancel " + jobId + ": HTTP " + r.statusCode() + " " + r.body());
        }
        awaitJobState(jobId, "CANCELED", timeout);
    }

    /** GET {@code path} as JSON, or null where the endpoint does not answer 200 (yet). */
    JsonNode getOrNull(String path) {
        try {
            HttpResponse<String> r = http.send(
                    HttpRequest.newBuilder(uri(path))
                            .timeout(Duration.ofSeconds(5))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            return r.statusCode() == 200 ? JSON.readTree(r.body()) : null;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private URI uri(String path) {
        return URI.create("http://127.0.0.1:" + restPort + path);
    }

    /** Polls {@code condition} every 100 ms until true; fails with {@code what} after {@code timeout}. */
    static void await(String what, Duration timeout, BooleanSupplier condition) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("Timed out after " + timeout.toSeconds() + " s waiting for: " + what);
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    /** {@code BashJavaUtils COMMAND --configDir conf}: [JVM flags, dynamic properties], as Flink's scripts read them. */
    private List<List<String>> bashJavaUtils(String command) throws Exception {
        Process p = new ProcessBuilder(javaCommand(List.of(
                        "-Xmx128m",
                        "org.apache.flink.runtime.util.bash.BashJavaUtils",
                        command,
                        "--configDir",
                        conf.toString())))
                .redirectErrorStream(true)
                .start();
        processes.add(p);
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("BashJavaUtils " + command + " failed:\n" + out);
        }
        processes.remove(p);
        List<List<String>> results = new ArrayList<>();
        for (String line : out.split("\\R")) {
            if (line.startsWith("BASH_JAVA_UTILS_EXEC_RESULT:")) {
                String value =
                        line.substring("BASH_JAVA_UTILS_EXEC_RESULT:".length()).trim();
                results.add(value.isEmpty() ? List.of() : Arrays.asList(value.split("\\s+")));
            }
        }
        if (results.size() != 2) {
            throw new IllegalStateException("BashJavaUtils " + command + ": expected 2 result lines:\n" + out);
        }
        return results;
    }

    private Process start(String name, List<String> jvmFlags, List<String> mainAndArgs, Map<String, String> env)
            throws IOException {
        List<String> jvm = new ArrayList<>(jvmFlags);
        jvm.add("-Dlog.file=" + log(name));
        jvm.add("-Dlog4j.configurationFile=" + conf.resolve("log4j.properties").toUri());
        // ORT extracts its natives here; inside target/, so nothing is left in /tmp.
        jvm.add("-Djava.io.tmpdir=" + Files.createDirectories(home.resolve("tmp/" + name)));
        jvm.addAll(mainAndArgs);
        ProcessBuilder pb = new ProcessBuilder(javaCommand(jvm))
                .redirectErrorStream(true)
                .redirectOutput(log(name + ".out").toFile());
        pb.environment().putAll(env);
        Process p = pb.start();
        processes.add(p);
        return p;
    }

    private List<String> javaCommand(List<String> rest) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(FLINK_JVM_OPENS);
        if (!rest.contains("-classpath")) {
            cmd.add("-classpath");
            cmd.add(classpath(List.of()));
        }
        cmd.addAll(rest);
        return cmd;
    }

    private String classpath(List<String> extra) {
        List<String> entries = new ArrayList<>();
        libs.forEach(l -> entries.add(l + "/*"));
        entries.addAll(extra);
        return String.join(java.io.File.pathSeparator, entries);
    }

    /** SIGKILL to every process still alive, then waits for each to be gone. */
    private void destroyAll() {
        for (Process p : processes) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        for (Process p : processes) {
            try {
                p.waitFor(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Processes this cluster started that are still alive. */
    List<Process> alive() {
        return processes.stream().filter(Process::isAlive).toList();
    }

    @Override
    public void close() {
        destroyAll();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException alreadyShuttingDown) {
            // the hook runs (or ran) anyway
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            paths.sorted((a, b) -> b.getNameCount() - a.getNameCount()).forEach(f -> {
                try {
                    Files.delete(f);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
