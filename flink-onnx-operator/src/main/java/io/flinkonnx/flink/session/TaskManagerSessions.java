package io.flinkonnx.flink.session;

import java.lang.management.ManagementFactory;
import java.lang.reflect.Field;
import java.util.AbstractMap;
import java.util.Map;
import java.util.WeakHashMap;
import javax.management.InstanceAlreadyExistsException;
import javax.management.MBeanServer;
import javax.management.ObjectName;
import javax.management.StandardMBean;
import org.apache.flink.annotation.Internal;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.ThreadSafeSimpleCounter;
import org.apache.flink.runtime.metrics.groups.AbstractMetricGroup;
import org.apache.flink.runtime.metrics.groups.GenericMetricGroup;
import org.apache.flink.runtime.metrics.groups.InternalOperatorMetricGroup;
import org.apache.flink.runtime.metrics.groups.TaskManagerMetricGroup;
import org.apache.flink.runtime.metrics.groups.TaskMetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ONNX Runtime sessions open in this TaskManager process across all its jobs, as the TaskManager metric
 * {@code flinkonnx.open_sessions} ({@code GET /taskmanagers/<id>/metrics?get=flinkonnx.open_sessions}). The
 * operator's {@code onnx.open_sessions} gauge leaves with its job; this one stays with the TaskManager, so it
 * shows the sessions of a cancelled job going back to 0. In a MiniCluster, whose TaskManagers share one JVM,
 * every TaskManager reports the sessions of the whole process.
 *
 * <p>Each job jar has a class loader of its own, and so its own copy of this class and of {@link
 * SessionRegistry}; all of them count into one JVM-wide count. Only classes loaded parent-first are handed to Flink
 * or kept JVM-wide (Flink's {@link ThreadSafeSimpleCounter}, JDK collections, Flink's own metric groups), so
 * nothing outlives a job while pinning its class loader.
 */
@Internal
public final class TaskManagerSessions {
    /** The metric group under the TaskManager's group. */
    public static final String GROUP = "flinkonnx";

    /** The metric: a counter, up at each session opened in the process, down at each one closed. */
    public static final String METRIC = "open_sessions";

    /**
     * Where the count lives: the platform MBean server, the JVM's own registry of named objects, which every
     * class loader reaches and which holds what it is given until the JVM exits. (System properties would reach
     * as far, but the JDK discourages non-String values there, and code that lists them expects strings.) The
     * MBean is a JDK entry: key, the sessions open in the process; value, the TaskManager groups with the
     * counter registered on each, weakly held (a MiniCluster's TaskManagers come and go within one JVM). Each
     * TaskManager gets a counter of its own: a MiniCluster's TaskManagers share one metric registry, whose REST
     * query service keeps one scope per metric object. The name carries the layout, so a later library version
     * that changes it does not read this one's.
     */
    static final String MBEAN = "io.flinkonnx:type=OpenOrtSessions,layout=1";

    private static final Logger LOG = LoggerFactory.getLogger(TaskManagerSessions.class);
    private static final Map.Entry<Counter, Map<MetricGroup, Counter>> SHARED = shared();
    private static final Field PARENT = parentField();

    private TaskManagerSessions() {}

    /** A session was opened in this process. */
    static void opened() {
        Map<MetricGroup, Counter> taskManagers = SHARED.getValue();
        synchronized (taskManagers) {
            SHARED.getKey().inc();
            taskManagers.values().forEach(Counter::inc);
        }
    }

    /** A session was closed in this process. */
    static void closed() {
        Map<MetricGroup, Counter> taskManagers = SHARED.getValue();
        synchronized (taskManagers) {
            SHARED.getKey().dec();
            taskManagers.values().forEach(Counter::dec);
        }
    }

    /** Sessions open now in this process, across every job's class loader. */
    public static long open() {
        return SHARED.getKey().getCount();
    }

    /**
     * Registers the count on the TaskManager metric group above {@code operatorGroup} (an operator's group, or
     * a group added under it), once per TaskManager across all jobs: a second registration would be a WARN
     * {@code Name collision}. Does nothing where no TaskManager group is above (test harnesses, {@code
     * UnregisteredMetricsGroup}).
     */
    public static void register(MetricGroup operatorGroup) {
        TaskManagerMetricGroup taskManager = taskManagerGroup(operatorGroup);
        if (taskManager == null) {
            return;
        }
        Map<MetricGroup, Counter> taskManagers = SHARED.getValue();
        Counter counter = new ThreadSafeSimpleCounter();
        synchronized (taskManagers) {
            if (taskManagers.containsKey(taskManager)) {
                return;
            }
            counter.inc(SHARED.getKey().getCount());
            taskManagers.put(taskManager, counter);
        }
        taskManager.addGroup(GROUP).counter(METRIC, counter);
        LOG.debug("Registered {}.{} on TaskManager {}", GROUP, METRIC, taskManager.taskManagerId());
    }

    /**
     * Operator group -> task -> job on this TaskManager -> TaskManager, through Flink's internal groups; a group
     * added under the operator's ({@code addGroup}) is climbed through its parent field, which Flink does not
     * expose.
     */
    static TaskManagerMetricGroup taskManagerGroup(MetricGroup group) {
        MetricGroup at = group;
        try {
            while (at instanceof GenericMetricGroup && PARENT != null) {
                at = (MetricGroup) PARENT.get(at);
            }
        } catch (IllegalAccessException e) {
            return null;
        }
        if (at instanceof InternalOperatorMetricGroup operator
                && operator.getTaskMetricGroup() instanceof TaskMetricGroup task
                && task.parent() != null) {
            return task.parent().parent();
        }
        return null;
    }

    @SuppressWarnings("unchecked")
    private static Map.Entry<Counter, Map<MetricGroup, Counter>> shared() {
        Map.Entry<Counter, Map<MetricGroup, Counter>> mine =
                new AbstractMap.SimpleImmutableEntry<>(new ThreadSafeSimpleCounter(), new WeakHashMap<>());
        try {
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            ObjectName name = new ObjectName(MBEAN);
            try {
                server.registerMBean(new StandardMBean(mine, Map.Entry.class), name);
                return mine;
            } catch (InstanceAlreadyExistsException another) {
                // another class loader (an earlier job) was first: count into its counters
                return new AbstractMap.SimpleImmutableEntry<>(
                        (Counter) server.getAttribute(name, "Key"),
                        (Map<MetricGroup, Counter>) server.getAttribute(name, "Value"));
            }
        } catch (Exception | LinkageError e) {
            LOG.warn("No JVM-wide ONNX session count ({}): {}.{} counts this job's sessions only", e, GROUP, METRIC);
            return mine;
        }
    }

    private static Field parentField() {
        try {
            Field parent = AbstractMetricGroup.class.getDeclaredField("parent");
            parent.setAccessible(true);
            return parent;
        } catch (ReflectiveOperationException | RuntimeException e) {
            LOG.warn("No TaskManager metric {}.{}: Flink's metric groups changed ({})", GROUP, METRIC, e.toString());
            return null;
        }
    }
}
