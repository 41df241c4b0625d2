package io.flinkonnx.it;

import io.flinkonnx.examples.EmbeddedKafka;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
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

    /** Starts the broker JVM (the test's classpath) and waits, up to two minutes, for its address. */
    static KafkaBrokerProcess start(Path log) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process process = new ProcessBuilder(
                        java,
                        "-Xmx512m",
                        "-cp",
                        System.getProperty("java.class.path"),
                        KafkaBrokerProcess.class.getName())
                .redirectError(log.toFile())
                .start();
        try {
            BufferedReader out =
                    new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
            String line;
            while ((line = out.readLine()) != null && System.nanoTime() < deadline) {
                if (line.startsWith(ADDRESS)) {
                    return new KafkaBrokerProcess(
                            process, line.substring(ADDRESS.length()).trim());
                }
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
