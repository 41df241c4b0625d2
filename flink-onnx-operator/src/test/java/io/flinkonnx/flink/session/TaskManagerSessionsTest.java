package io.flinkonnx.flink.session;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.ref.WeakReference;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.JobID;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.clusterframework.types.ResourceID;
import org.apache.flink.runtime.executiongraph.ExecutionAttemptID;
import org.apache.flink.runtime.metrics.groups.InternalOperatorMetricGroup;
import org.apache.flink.runtime.metrics.groups.TaskManagerMetricGroup;
import org.apache.flink.runtime.metrics.groups.TaskMetricGroup;
import org.apache.flink.runtime.metrics.util.TestingMetricRegistry;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The TaskManager-scoped session count on Flink's real metric groups (a registry that records what reaches it),
 * and across class loaders the way job jars load this library: each its own copy of the class, one counter.
 */
class TaskManagerSessionsTest {
    /** What the registry was handed: metric identifier and metric. */
    private final List<String> identifiers = new ArrayList<>();

    private final List<Metric> registered = new ArrayList<>();
    private TaskManagerMetricGroup taskManager;

    @BeforeEach
    void taskManager() {
        TestingMetricRegistry registry = TestingMetricRegistry.builder()
                .setRegisterConsumer((metric, name, group) -> {
                    identifiers.add(group.getMetricIdentifier(name));
                    registered.add(metric);
                })
                .build();
        taskManager =
                TaskManagerMetricGroup.createTaskManagerMetricGroup(registry, "localhost", new ResourceID("tm-1"));
    }

    /** An operator's group on {@code taskManager}, in a job of its own, as a TaskManager builds it. */
    private InternalOperatorMetricGroup operator(String name) {
        TaskMetricGroup task = taskManager.addJob(new JobID(), "job").addTask(ExecutionAttemptID.randomId(), "task");
        return task.getOrAddOperator(name);
    }

    private List<String> sessionMetrics() {
        return identifiers.stream()
                .filter(id -> id.endsWith("." + TaskManagerSessions.GROUP + "." + TaskManagerSessions.METRIC))
                .toList();
    }

    @Test
    void registersTheCounterOnTheTaskManagerAboveAnOperatorsSubgroupOnceForAllOperatorsAndJobs() {
        MetricGroup onnx = operator("score").addGroup("onnx");
        TaskManagerSessions.register(onnx);
        TaskManagerSessions.register(onnx); // the operator's second instance on this TaskManager
        TaskManagerSessions.register(operator("score").addGroup("onnx").addGroup("model_version", "abc"));

        assertThat(sessionMetrics())
                .as("one registration, at TaskManager scope, whatever the number of operators and jobs")
                .containsExactly("localhost.taskmanager.tm-1.flinkonnx.open_sessions");
        Counter counter =
                (Counter) registered.get(identifiers.indexOf(sessionMetrics().get(0)));
        long before = counter.getCount();
        TaskManagerSessions.opened();
        assertThat(counter.getCount()).isEqualTo(before + 1).isEqualTo(TaskManagerSessions.open());
        TaskManagerSessions.closed();
        assertThat(counter.getCount()).isEqualTo(before);
    }

    @Test
    void aGroupWithoutAnOperatorAndTaskManagerAboveRegistersNothing() {
        TaskManagerSessions.register(new UnregisteredMetricsGroup());
        TaskManagerSessions.register(new UnregisteredMetricsGroup().addGroup("onnx"));
        TaskManagerSessions.register(taskManager.addGroup("onnx")); // a TaskManager's group, no operator under it
        TaskManagerSessions.register(null);

        assertThat(sessionMetrics()).isEmpty();
    }

    @Test
    void jobClassLoadersEachWithTheirOwnCopyCountIntoOneCounterRegisteredOnce() throws Exception {
        TaskManagerSessions.register(operator("score").addGroup("onnx"));
        long before = TaskManagerSessions.open();
        try (URLClassLoader job1 = jobClassLoader();
                URLClassLoader job2 = jobClassLoader()) {
            Class<?> copy1 = job1.loadClass(TaskManagerSessions.class.getName());
            Class<?> copy2 = job2.loadClass(TaskManagerSessions.class.getName());
            assertThat(copy1).isNotSameAs(TaskManagerSessions.class).isNotSameAs(copy2);

            call(copy1, "opened");
            call(copy2, "opened");
            call(copy2, "register", operator("score").addGroup("onnx"));
            assertThat(TaskManagerSessions.open()).isEqualTo(before + 2);
            assertThat(call(copy1, "open")).isEqualTo(before + 2);

            call(copy1, "closed");
            call(copy2, "closed");
            assertThat(TaskManagerSessions.open()).isEqualTo(before);
        }
        assertThat(sessionMetrics()).hasSize(1);
    }

    @Test
    void theSharedCounterKeepsNoJobClassLoaderAlive() throws Exception {
        WeakReference<ClassLoader> job = countAndRegisterInAJobClassLoaderThenCloseIt();
        for (int i = 0; i < 20 && job.get() != null; i++) {
            System.gc();
        }
        assertThat(job.get()).as("the job's class loader after its job ended").isNull();
        assertThat(sessionMetrics()).hasSize(1);
    }

    private WeakReference<ClassLoader> countAndRegisterInAJobClassLoaderThenCloseIt() throws Exception {
        try (URLClassLoader job = jobClassLoader()) {
            Class<?> copy = job.loadClass(TaskManagerSessions.class.getName());
            call(copy, "opened");
            call(copy, "register", operator("score").addGroup("onnx"));
            call(copy, "closed");
            return new WeakReference<>(job);
        }
    }

    /**
     * A job jar's class loader: this library's classes child-first from the same classes folder, everything
     * else (Flink, the JDK) from the parent, as Flink's {@code ChildFirstClassLoader} with its parent-first
     * patterns does.
     */
    private static URLClassLoader jobClassLoader() {
        URL classes =
                TaskManagerSessions.class.getProtectionDomain().getCodeSource().getLocation();
        return new URLClassLoader(new URL[] {classes}, TaskManagerSessionsTest.class.getClassLoader()) {
            @Override
            protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
                if (!name.startsWith("io.flinkonnx.")) {
                    return super.loadClass(name, resolve);
                }
                synchronized (getClassLoadingLock(name)) {
                    Class<?> c = findLoadedClass(name);
                    return c != null ? c : findClass(name);
                }
            }
        };
    }

    private static Object call(Class<?> copy, String method, Object... args) throws Exception {
        Method m =
                args.length == 0 ? copy.getDeclaredMethod(method) : copy.getDeclaredMethod(method, MetricGroup.class);
        m.setAccessible(true);
        return m.invoke(null, args);
    }
}
