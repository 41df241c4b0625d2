package io.flinkonnx.it;

import io.flinkonnx.examples.EmbeddedKafka;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * The examples' KRaft broker in a JVM of its own, for the tests where deployment is the point (a cluster of
 * separate processes): {@link #main} starts it, prints its address and runs until its standard input
 * closes; {@link #start} launches that JVM from the test and stops it on {@link #close}.
 */
final class KafkaBrokerProcess implements AutoCloseable {
    private static final String ADDRESS = "BOOTSTRAP=";

    private final Process process;
    final String bootstrapServers;

    private KafkaBrokerProcess(Process process, String bootstrapServers) {
        this.process = process;
        this.bootstrapServers = bootstrapServers;
    }

    public static void main(String[] args) throws Exception {
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            System.out.println(ADDRESS + kafka.bootstrapServers());
            System.out.flush();
            // Runs until the test closes this process's standard input (or the test JVM dies).
            while (System.in.read() >= 0) {
                // nothing to read; the broker serves on its own threads
            }
        }
        System.exit(0);
    }

    /**
     * Starts the broker JVM (the test's classpath), its output in {@code log} (a file, so that nothing blocks
     * on a full pipe), and polls the log for its address, up to two minutes.
     */
    static KafkaBrokerProcess start(Path log) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Files.createDirectories(log.toAbsolutePath().getParent());
        Process process = new ProcessBuilder(
                        java,
                        "-Xmx512m",
                        "-cp",
                        System.getProperty("java.class.path"),
                        KafkaBrokerProcess.class.getName())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        try {
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
            while (System.nanoTime() < deadline && process.isAlive()) {
                for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
                    if (line.startsWith(ADDRESS)) {
                        return new KafkaBrokerProcess(
                                process, line.substring(ADDRESS.length()).trim());
                    }
                }
                Thread.sleep(50); // polling the log for the address, bounded by the deadline
            }
            throw new IllegalStateException("The Kafka broker process printed no address; see " + log);
        } catch (Exception | Error e) {
            process.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            throw e;
        }
    }

    /** Whether the broker JVM still runs. */
    boolean isAlive() {
        return process.isAlive();
    }

    @Override
    public void close() throws Exception {
        process.getOutputStream().close(); // the broker shuts down cleanly when its input closes
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
    }
}
