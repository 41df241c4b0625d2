package io.flinkonnx.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.flink.annotation.Internal;

/** The test process's resident memory, for the leak tests (Linux, where CI runs). */
@Internal
public final class ProcessMemory {
    private static final Path STATUS = Path.of("/proc/self/status");

    private ProcessMemory() {}

    /** Whether this platform reports resident memory ({@code /proc/self/status}). */
    public static boolean measurable() {
        return Files.exists(STATUS);
    }

    /**
     * Resident memory outside the Java heap, after a GC: VmRSS less the heap's committed size (0 where not
     * {@link #measurable}). The heap grows with garbage and keeps what it committed, which says nothing of
     * native leaks; ORT sessions live outside it. Run with the heap pre-touched ({@code -XX:+AlwaysPreTouch})
     * so that committed heap is resident heap.
     */
    public static long residentOutsideHeapBytes() throws IOException {
        System.gc();
        if (!measurable()) {
            return 0;
        }
        for (String line : Files.readAllLines(STATUS)) {
            if (line.startsWith("VmRSS:")) {
                return (Long.parseLong(line.replaceAll("[^0-9]", "")) << 10)
                        - Runtime.getRuntime().totalMemory();
            }
        }
        return 0;
    }
}
