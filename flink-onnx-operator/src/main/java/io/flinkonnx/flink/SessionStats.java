package io.flinkonnx.flink;

import io.flinkonnx.flink.session.SessionRegistry;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Counts of the ONNX Runtime sessions this library has open in the current process (a TaskManager, or a
 * MiniCluster), for monitoring and for tests that prove sessions are shared and released.
 *
 * <pre>{@code
 * env.execute();
 * assert SessionStats.open() == 0;   // every session was released when the job ended
 * }</pre>
 */
@PublicEvolving
public final class SessionStats {
    private SessionStats() {}

    /**
     * Sessions open now.
     *
     * @return the number of ONNX Runtime sessions open in this process, >= 0
     */
    public static int open() {
        return SessionRegistry.INSTANCE.openSessions();
    }

    /**
     * Operator instances holding a session now.
     *
     * @return the references to open sessions, >= 0 (one session shared by several operators counts each)
     */
    public static int references() {
        return SessionRegistry.INSTANCE.references();
    }

    /**
     * Sessions opened since the process started.
     *
     * @return the number of sessions created, >= 0
     */
    public static long created() {
        return SessionRegistry.INSTANCE.sessionsCreated();
    }

    /**
     * Sessions closed since the process started.
     *
     * @return the number of sessions closed, >= 0
     */
    public static long closed() {
        return SessionRegistry.INSTANCE.sessionsClosed();
    }
}
