package io.flinkonnx.flink.session;

/**
 * Run in a child JVM by {@link OrtTelemetryCrashTest}: creates ORT's environment through the library and
 * prints its version, or the library's refusal. A crash inside ORT ends the process before either line.
 */
public final class OrtEnvironmentProbe {
    private OrtEnvironmentProbe() {}

    public static void main(String[] args) {
        try {
            System.out.println("CREATED " + OrtRuntime.env().getVersion());
        } catch (IllegalStateException e) {
            System.out.println("REFUSED " + e.getMessage());
            System.exit(3);
        }
    }
}
