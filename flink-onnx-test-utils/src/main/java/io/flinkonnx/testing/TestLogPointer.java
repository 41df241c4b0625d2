package io.flinkonnx.testing;

import java.nio.file.Path;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;

/**
 * The tests' logs go to a file ({@code flinkonnx-test-log4j2.properties} in this jar), so the console shows
 * Maven's and the tests' own results; a failing test prints where its log is. Registered with the JUnit
 * Platform through {@code META-INF/services}: every module whose tests have this jar gets it.
 */
public final class TestLogPointer implements TestExecutionListener {
    /** The system property naming the log file (set per plugin by the build; the default otherwise). */
    public static final String LOG_FILE_PROPERTY = "flinkonnx.test.log";

    private static final String DEFAULT_LOG_FILE = "target/test-logs/tests.log";

    @Override
    public void executionFinished(TestIdentifier test, TestExecutionResult result) {
        if (test.isTest() && result.getStatus() == TestExecutionResult.Status.FAILED) {
            System.out.println("[FAILED] " + test.getDisplayName() + ": Flink's, Kafka's and"
                    + " the library's log of this run is in " + logFile());
        }
    }

    /** The absolute path of this JVM's test log. */
    public static Path logFile() {
        return Path.of(System.getProperty(LOG_FILE_PROPERTY, DEFAULT_LOG_FILE)).toAbsolutePath();
    }
}
