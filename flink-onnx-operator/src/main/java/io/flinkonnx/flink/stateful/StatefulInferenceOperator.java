package io.flinkonnx.flink.stateful;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.flink.versions.ModelServing;
import io.flinkonnx.flink.versions.ModelVersions;
import io.flinkonnx.model.ElementType;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.BasicArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Scores a keyed stream with a recurrent model, keeping each key's state tensors in Flink keyed state
 * ({@code ValueState} of primitive arrays per state pair), batched across keys.
 *
 * <p>Records are buffered as in the batching operator ({@link RecordBuffer}, its byte bound included). A flush splits the buffer into successive runs in
 * which each key appears at most once (a key's n-th buffered record goes to run n, so input order per key
 * is kept); for each run the keys' states are stacked along each state's batch axis, the run is scored by
 * the engine (isolating failing records), and each scored record's new states are sliced out and written
 * to its key. A record that fails leaves its key's state as it was. Outcomes are emitted in input order
 * after the flush's last run. The buffer is flushed before every checkpoint barrier, watermark and at end
 * of input, so a checkpoint holds states consistent with every emitted prediction.
 */
@Internal
public final class StatefulInferenceOperator<IN, OUT> extends BufferedScoringOperator<IN, OUT> {
    private static final long serialVersionUID = 1L;

    private final OnnxInferenceSpec<IN, OUT> spec;
    private final BatchPolicy policy;
    private final RecurrentState<IN> declared;
    /** Null when the model never changes. */
    private final ModelUpdates updates;

    private transient ModelServing<IN, OUT> serving;
    /** The runner serving now (the serving handle's). */
    private transient InferenceRunner<IN, OUT> runner;

    private transient BatchMetrics batchMetrics;
    private transient StateLayout layout;
    private transient ValueState<Object>[] states;
    private transient ValueStateDescriptor<Object>[] descriptors;
    /** Swaps that reset every key's states (a version with other states, resetStatesOnSignatureChange). */
    private transient Counter stateResets;

    private transient RecordBuffer<IN, OUT> buffer;

    // Per buffered record (by its index in the buffer): its key, and whether it resets the key's state.
    private transient Object[] keys;
    private transient boolean[] resets;

    // One flush: each record's run, and which buffered record each position of the current run holds.
    private transient int[] runOf;
    private transient int[] runMembers;
    private transient Map<Object, Integer> occurrences;
    private transient RunOutcomes runOutcomes;

    private transient Counter runs;

    public StatefulInferenceOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            RecurrentState<IN> declared,
            OutputTag<FailedRecord<IN>> failedTag) {
        this(spec, policy, declared, failedTag, null);
    }

    /**
     * With {@code updates}: new versions of the model are loaded, gated and swapped in between batches, as in the
     * batching operator. The gate refuses a version whose signature differs (its states' names, types and shapes
     * included), so every key's state carries over to the version that takes over; unless its states alone differ
     * and {@link ModelUpdates#resetStatesOnSignatureChange()} is set: then every key's state is cleared at the swap.
     */
    public StatefulInferenceOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            RecurrentState<IN> declared,
            OutputTag<FailedRecord<IN>> failedTag,
            ModelUpdates updates) {
        super(failedTag);
        this.spec = spec;
        this.policy = policy;
        this.declared = declared;
        this.updates = updates;
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        // Every version's runner supplies this operator's states through a layout of its own: a layout adapts to its
        // runner's model at open, and a candidate version opens on the loader thread while another version serves.
        serving = new ModelServing<>(spec, policy, updates, s -> new InferenceRunner<>(s, new StateLayout(declared)));
        serving.initializeState(context, getRuntimeContext().getTaskInfo().getIndexOfThisSubtask());
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        serving.snapshotState();
    }

    @Override
    @SuppressWarnings("unchecked")
    public void open() throws Exception {
        super.open();
        MetricGroup metrics = onnxMetrics();
        batchMetrics = new BatchMetrics(metrics);
        stateResets = metrics.counter("num_state_resets");
        serving.open(
                ModelServing.host(
                        timers(),
                        this::flush,
                        next -> {
                            StateLayout nextLayout = (StateLayout) next.suppliedInputs();
                            if (layout != null && !layout.sameStates(nextLayout)) {
                                resetStates(nextLayout); // the gate let it through: resetStatesOnSignatureChange
                            }
                            runner = next;
                            layout = nextLayout;
                            buffer = bufferFor(buffer, next, policy, batchMetrics);
                        },
                        this::sideOutput),
                getRuntimeContext().getTaskInfo().getAllocationIDAsString(),
                getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(),
                getUserCodeClassloader(),
                metrics);
        int capacity = buffer.capacity();
        states = new ValueState[layout.states()];
        descriptors = new ValueStateDescriptor[layout.states()];
        for (int p = 0; p < states.length; p++) {
            registerState(layout, p);
        }
        keys = new Object[capacity];
        resets = new boolean[capacity];
        runOf = new int[capacity];
        runMembers = new int[capacity];
        occurrences = new HashMap<>();
        runOutcomes = new RunOutcomes();
        runs = metrics.counter("num_state_runs");
    }

    /**
     * Registers state {@code p} as {@code layout} has it. Its name holds its element type unless FLOAT (the common
     * case keeps its name): state of another type after a reset is another state, not a migration of the old one.
     */
    private void registerState(StateLayout layout, int p) {
        ElementType type = layout.stateType(p);
        String name = "onnx-state-" + layout.stateName(p)
                + (type == ElementType.FLOAT ? "" : "-" + type.name().toLowerCase(java.util.Locale.ROOT));
        ValueStateDescriptor<Object> descriptor = new ValueStateDescriptor<>(name, typeOf(layout, p));
        if (declared.ttl() != null) {
            descriptor.enableTimeToLive(StateTtlConfig.newBuilder(declared.ttl())
                    .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                    .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                    .build());
        }
        descriptors[p] = descriptor;
        states[p] = getRuntimeContext().getState(descriptor);
    }

    /**
     * At the swap to a version whose states differ (the buffer is scored): clears every key's states, so each
     * key's next record starts from {@code next}'s initial state, and registers the states as {@code next} has
     * them. On the task thread, between batches: the next checkpoint holds the new version and only states it wrote.
     */
    private void resetStates(StateLayout next) throws Exception {
        Object key = getCurrentKey();
        for (int p = 0; p < states.length; p++) {
            getKeyedStateBackend()
                    .applyToAllKeys(
                            VoidNamespace.INSTANCE,
                            VoidNamespaceSerializer.INSTANCE,
                            descriptors[p],
                            (k, state) -> state.clear());
            if (layout.stateType(p) != next.stateType(p)) {
                registerState(next, p);
            }
        }
        stateResets.inc();
        if (key != null) {
            setCurrentKey(key);
        }
    }

    /** The explicit type of a state's values (a primitive array), so Flink never falls back to Kryo. */
    @SuppressWarnings("unchecked")
    private static TypeInformation<Object> typeOf(StateLayout layout, int p) {
        Class<?> arrayType = layout.stateType(p).javaArrayType();
        TypeInformation<?> info = arrayType == String[].class
                ? BasicArrayTypeInfo.STRING_ARRAY_TYPE_INFO
                : PrimitiveArrayTypeInfo.getInfoFor(arrayType);
        return (TypeInformation<Object>) info;
    }

    @Override
    public void processElement(StreamRecord<IN> element) throws Exception {
        IN record = buffer.own(element.getValue());
        Object key = getCurrentKey();
        boolean reset;
        try {
            reset = declared.resetWhen() != null && declared.resetWhen().test(record);
        } catch (Exception e) {
            deadLetter(record, new RecordConversionException("resetWhen failed on the record: " + e, e), runner);
            return;
        }
        try {
            buffer.add(record, element.hasTimestamp(), element.getTimestamp(), () -> {
                flush();
                setCurrentKey(key);
                return true;
            });
        } catch (RecordConversionException e) {
            if (reset) {
                // The sequence ends even so; the key's buffered records go first, in order.
                flush();
                setCurrentKey(key);
                clearStates();
            }
            deadLetter(record, e, runner);
            return;
        }
        int index = buffer.size() - 1;
        keys[index] = key;
        resets[index] = reset;
        if (buffer.due()) {
            flush();
        }
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        if (buffer.expired(time)) {
            flush();
        }
        serving.onTimer(time);
    }

    /** Scores everything buffered, run after run (each key at most once per run), and emits in input order. */
    @Override
    protected void flush() throws Exception {
        if (buffer == null) {
            return;
        }
        int count = buffer.take();
        if (count == 0) {
            return;
        }
        try {
            int runCount = 0;
            occurrences.clear();
            for (int i = 0; i < count; i++) {
                runOf[i] = occurrences.merge(keys[i], 1, Integer::sum) - 1;
                runCount = Math.max(runCount, runOf[i] + 1);
            }
            for (int r = 0; r < runCount; r++) {
                scoreRun(r, count);
            }
            buffer.complete(count, emitterFor(runner));
        } finally {
            Arrays.fill(keys, 0, count, null);
        }
    }

    /**
     * Run {@code r}: the records that are their key's r-th in the buffer, in input order, each with its key's
     * current states and the constants, scored as one batch.
     */
    private void scoreRun(int r, int count) throws Exception {
        int n = 0;
        for (int i = 0; i < count; i++) {
            if (runOf[i] != r) {
                continue;
            }
            setCurrentKey(keys[i]);
            if (putStates(i)) {
                runMembers[n++] = i;
            }
        }
        if (n == 0) {
            return;
        }
        runs.inc();
        buffer.scoreRun(runMembers, n, runOutcomes);
    }

    /**
     * Puts the current key's states (or the initial ones) and the constants into record {@code i}'s row. A
     * stored state that no longer fits the model (restored into a changed model) fails the record: it cannot
     * be scored with its sequence's state, and the initial state would give a plausible but wrong prediction.
     * A reset record clears that state all the same, as a reset does whatever happens to its record, so the
     * key's next record starts from the initial state.
     */
    private boolean putStates(int i) throws Exception {
        RecordInputs row = buffer.row(i);
        for (int p = 0; p < states.length; p++) {
            Object value = states[p].value();
            if (value == null) {
                value = layout.initial(p);
            } else if (!layout.fits(p, value)) {
                String fits = "The stored state '" + layout.stateName(p) + "' of this key does not fit the model's"
                        + " state (" + layout.stateType(p) + " values of shape "
                        + Arrays.toString(layout.stateShape(p)) + "); was the model changed? ";
                if (resets[i]) {
                    clearStates();
                    buffer.failed(
                            i,
                            new RecordConversionException(fits + "This record resets the key, so the stored"
                                    + " state is cleared: the key's next record starts from the initial state"));
                } else {
                    buffer.failed(
                            i,
                            new RecordConversionException(fits + "A record for which resetWhen holds clears"
                                    + " it (so does the state's ttl)"));
                }
                return false;
            }
            row.putSupplied(layout.stateInput(p), value, layout.stateShape(p));
        }
        layout.putConstants(row);
        return true;
    }

    private void clearStates() {
        for (ValueState<Object> state : states) {
            state.clear();
        }
    }

    /** Where the engine hands a run's outcomes: results kept by buffer index, new states written per key. */
    private final class RunOutcomes implements InferenceRunner.Outcomes<OUT> {
        @Override
        public void scored(int index, OUT result) {
            throw new IllegalStateException("The engine hands stateful outcomes with their outputs");
        }

        @Override
        public void scored(int index, OUT result, OutputRow outputs) throws Exception {
            int i = runMembers[index];
            Object[] next = new Object[states.length];
            for (int p = 0; p < states.length; p++) {
                String name = layout.stateOutput(p);
                Object value = outputs.value(name);
                if (!layout.fits(p, value) || !Arrays.equals(outputs.shape(name), layout.stateShape(p))) {
                    failed(
                            index,
                            new RecordConversionException("State output '" + name + "' gave shape "
                                    + Arrays.toString(outputs.shape(name)) + " for this record; state '"
                                    + layout.stateName(p) + "' takes " + layout.stateType(p) + " values of shape "
                                    + Arrays.toString(layout.stateShape(p))));
                    return;
                }
                next[p] = value;
            }
            setCurrentKey(keys[i]);
            if (resets[i]) {
                clearStates();
            } else {
                for (int p = 0; p < states.length; p++) {
                    states[p].update(next[p]);
                }
            }
            buffer.scored(i, result);
        }

        @Override
        public void failed(int index, Exception reason) throws Exception {
            int i = runMembers[index];
            buffer.failed(i, reason);
            if (resets[i]) {
                setCurrentKey(keys[i]);
                clearStates();
            }
        }

        @Override
        public void drift(DriftReport report) throws Exception {
            reports.drift(report);
        }

        @Override
        public void placement(FallbackReport report) throws Exception {
            reports.placement(report);
        }
    }

    /** The batch metrics of this operator's buffer. */
    @VisibleForTesting
    public BatchMetrics batchMetrics() {
        return buffer.metrics();
    }

    /** The model versions of this operator, null without updates. */
    @VisibleForTesting
    public ModelVersions<IN, OUT> versions() {
        return serving.versions();
    }

    /** Runs scored since open (for tests of batching across keys). */
    @VisibleForTesting
    public long runCount() {
        return runs.getCount();
    }

    @Override
    public void close() throws Exception {
        try {
            if (serving != null) {
                serving.close(); // stops loading; closes the versions and the serving runner
                serving = null;
                runner = null;
            }
        } finally {
            super.close();
        }
    }
}
