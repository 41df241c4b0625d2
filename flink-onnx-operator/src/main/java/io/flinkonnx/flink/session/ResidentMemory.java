package io.flinkonnx.flink.session;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;

/**
 * The resident memory a session costs, measured rather than guessed from the model file: the growth of the
 * process's resident set ({@code VmRSS}) while the session is created and runs its first (warm-up) run, which
 * is what ORT keeps for it (the weights, pre-packed copies, the arena after a run). Learnt once per model and
 * settings in this process and reused by later loads of the same model (an evicted model that comes back).
 * Measurements are taken one at a time in the process so that two loads do not count each other, but a load
 * never waits for another's measurement: while one is measured, others load unmeasured (the file size stands
 * in) and their model is measured at a later load. Other threads may allocate or free memory meanwhile, so a
 * reading can be off either way; {@link SharedSession#residentBytes()} never counts less than the file. Where
 * {@code /proc} does not tell (not Linux), or the resident set did not grow, nothing is learnt and the file size
 * stands in.
 */
@Internal
public final class ResidentMemory {
    private static final Path STATUS = Path.of("/proc/self/status");
    private static final ReentrantLock MEASURING = new ReentrantLock();
    private static final Map<String, Long> LEARNT = new ConcurrentHashMap<>();

    private ResidentMemory() {}

    /** What a measured load does between the two readings. */
    public interface Load<T> {
        T run() throws Exception;
    }

    /** The outcome of a measured load and the bytes learnt for its model (0: none). */
    public static final class Measured<T> {
        public final T value;
        public final long bytes;

        Measured(T value, long bytes) {
            this.value = value;
            this.bytes = bytes;
        }
    }

    /**
     * Runs {@code load} and learns its resident growth under {@code key}, unless a measurement of that key
     * exists already (then it runs unmeasured and that one is returned).
     */
    public static <T> Measured<T> measure(String key, Load<T> load) throws Exception {
        Long known = LEARNT.get(key);
        if (known != null) {
            return new Measured<>(load.run(), known);
        }
        if (!MEASURING.tryLock()) {
            // another load is being measured: slots load in parallel (a big model's minutes-long load must not
            // hold up another slot's), this one unmeasured, so that neither reading counts the other load
            return new Measured<>(load.run(), 0);
        }
        try {
            long before = residentBytes();
            T value = load.run();
            long after = residentBytes();
            long grown = before > 0 && after > before ? after - before : 0;
            if (grown > 0) {
                LEARNT.merge(key, grown, Math::min);
            }
            return new Measured<>(value, grown);
        } finally {
            MEASURING.unlock();
        }
    }

    /** The bytes learnt for {@code key}, or 0. */
    public static long learnt(String key) {
        return LEARNT.getOrDefault(key, 0L);
    }

    /** Forgets every measurement (tests that measure the same model again). */
    @VisibleForTesting
    public static void forget() {
        LEARNT.clear();
    }

    /** This process's resident set in bytes ({@code VmRSS}), or 0 where {@code /proc} does not tell. */
    public static long residentBytes() {
        try {
            for (String line : Files.readAllLines(STATUS, StandardCharsets.US_ASCII)) {
                if (line.startsWith("VmRSS:")) {
                    String kb = line.substring(6).trim();
                    int space = kb.indexOf(' ');
                    return Long.parseLong(space < 0 ? kb : kb.substring(0, space)) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return 0;
        }
        return 0;
    }
}
