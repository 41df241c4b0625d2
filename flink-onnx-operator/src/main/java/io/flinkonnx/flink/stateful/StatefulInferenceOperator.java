package io.flinkonnx.flink.stateful;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.RecurrentState;
import io.flinkonnx.flink.engine.BatchBytes;
import io.flinkonnx.flink.engine.BufferedScoringOperator;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.tensor.RecordInputs;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.annotation.Internal;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.BasicArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.util.OutputTag;

/**
 * Scores a keyed stream with a recurrent model, keeping each key's state tensors in Flink keyed state
 * ({@code ValueState} of primitive arrays per state pair), batched across keys.
 *
 * <p>Records are buffered as in the batching operator, with its byte bound ({@link BatchBytes}). A flush splits the buffer into successive runs in
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

    private transient InferenceRunner<IN, OUT> runner;
    private transient StateLayout layout;
    private transient ValueState<Object>[] states;
    private transient int capacity;
    private transient long delayMillis;
    private transient long batchDeadline;
    private transient TypeSerializer<IN> copier;

    // The buffer, in input order.
    private transient int size;
    private transient long bufferedBytes;
    /** The buffer's bytes as the byte bound counts them (padding to the widest record included). */
    private transient BatchBytes batchBytes;

    private transient Object[] records;
    private transient Object[] keys;
    private transient boolean[] resets;
    private transient long[] timestamps;
    private transient boolean[] hasTimestamp;
    private transient Object[] results;
    private transient Exception[] failures;

    // One flush: each record's run, the current run's records, which buffered record each row holds.
    private transient int[] runOf;
    private transient int[] runMembers;
    private transient Object[] runRecords;
    private transient int[] rowOf;
    private transient int[] recordAt;
    private transient Map<Object, Integer> occurrences;
    private transient RunOutcomes runOutcomes;

    private transient Counter inferences;
    private transient Counter batches;
    private transient Counter runs;
    private transient Counter failedRecords;

    public StatefulInferenceOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            BatchPolicy policy,
            RecurrentState<IN> declared,
            OutputTag<FailedRecord<IN>> failedTag) {
        super(failedTag);
        this.spec = spec;
        this.policy = policy;
        this.declared = declared;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void open() throws Exception {
        super.open();
        MetricGroup metrics = getMetricGroup().addGroup(InferenceRunner.METRIC_GROUP);
        layout = new StateLayout(declared);
        runner = new InferenceRunner<>(spec, layout);
        capacity = openRunner(runner, policy, metrics);
        batchBytes = new BatchBytes(runner);
        states = new ValueState[layout.states()];
        for (int p = 0; p < states.length; p++) {
            ValueStateDescriptor<Object> descriptor =
                    new ValueStateDescriptor<>("onnx-state-" + layout.stateName(p), typeOf(layout, p));
            if (declared.ttl() != null) {
                descriptor.enableTimeToLive(StateTtlConfig.newBuilder(declared.ttl())
                        .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                        .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                        .build());
            }
            states[p] = getRuntimeContext().getState(descriptor);
        }
        delayMillis = policy.maxBatchDelay().toMillis();
        records = new Object[capacity];
        keys = new Object[capacity];
        resets = new boolean[capacity];
        timestamps = new long[capacity];
        hasTimestamp = new boolean[capacity];
        results = new Object[capacity];
        failures = new Exception[capacity];
        runOf = new int[capacity];
        runMembers = new int[capacity];
        runRecords = new Object[capacity];
        rowOf = new int[capacity];
        recordAt = new int[capacity];
        occurrences = new HashMap<>();
        runOutcomes = new RunOutcomes();
        copier = getExecutionConfig().isObjectReuseEnabled()
                ? getOperatorConfig().<IN>getTypeSerializerIn(0, getUserCodeClassloader())
                : null;
        inferences = metrics.counter("num_inferences");
        batches = metrics.counter("num_batches");
        runs = metrics.counter("num_state_runs");
        failedRecords = metrics.counter("failed_records");
        output.collect(FallbackReport.TAG, new StreamRecord<>(runner.fallbackReport()));
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
        IN record = copier == null ? element.getValue() : copier.copy(element.getValue());
        Object key = getCurrentKey();
        boolean reset;
        try {
            reset = declared.resetWhen() != null && declared.resetWhen().test(record);
        } catch (Exception e) {
            deadLetter(
                    record,
                    new RecordConversionException("resetWhen failed on the record: " + e, e),
                    failedRecords,
                    runner);
            return;
        }
        RecordInputs row = runner.row(size);
        try {
            runner.encode(record, row, policy.rejectNaN());
        } catch (RecordConversionException e) {
            if (reset) {
                // The sequence ends even so; the key's buffered records go first, in order.
                flush();
                setCurrentKey(key);
                clearStates();
            }
            deadLetter(record, e, failedRecords, runner);
            return;
        }
        if (size > 0 && batchBytes.with(row, size) > policy.maxBufferedBytes()) {
            runner.swapRows(size, capacity); // park the encoded record in the spare row while the buffer runs
            flush();
            setCurrentKey(key);
            runner.swapRows(capacity, 0);
        }
        // Detached after the parking above: as the first row of its batch it starts the staging over.
        row.detach(size);
        bufferedBytes = batchBytes.with(row, size);
        batchBytes.add(row, size);
        records[size] = record;
        keys[size] = key;
        resets[size] = reset;
        hasTimestamp[size] = element.hasTimestamp();
        timestamps[size] = element.getTimestamp();
        size++;
        if (size == 1 && delayMillis > 0 && capacity > 1) {
            batchDeadline = getProcessingTimeService().getCurrentProcessingTime() + delayMillis;
            getProcessingTimeService().registerTimer(batchDeadline, this);
        }
        if (size >= capacity || bufferedBytes >= policy.maxBufferedBytes() || delayMillis == 0) {
            flush();
        }
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        if (size > 0 && time >= batchDeadline) {
            flush();
        }
    }

    /** Scores everything buffered, run after run (each key at most once per run), and emits in input order. */
    @SuppressWarnings("unchecked")
    @Override
    protected void flush() throws Exception {
        if (size == 0) {
            return;
        }
        int count = size;
        // Cleared first: a systemic failure thrown below fails the task, and nothing may be emitted twice.
        size = 0;
        bufferedBytes = 0;
        try {
            int runCount = 0;
            occurrences.clear();
            for (int i = 0; i < count; i++) {
                runOf[i] = occurrences.merge(keys[i], 1, Integer::sum) - 1;
                runCount = Math.max(runCount, runOf[i] + 1);
                rowOf[i] = i;
                recordAt[i] = i;
            }
            for (int r = 0; r < runCount; r++) {
                scoreRun(r, count);
            }
            emitInOrder(count, records, results, failures, hasTimestamp, timestamps, inferences, failedRecords, runner);
        } finally {
            Arrays.fill(records, 0, count, null);
            Arrays.fill(keys, 0, count, null);
            Arrays.fill(results, 0, count, null);
            Arrays.fill(failures, 0, count, null);
            Arrays.fill(runRecords, null);
        }
        batches.inc();
    }

    /**
     * Run {@code r}: the records that are their key's r-th in the buffer, in input order. Their rows move to
     * the front (rows of earlier runs are done and may be overwritten), get their key's current states and
     * the constants, and are scored.
     */
    private void scoreRun(int r, int count) throws Exception {
        int n = 0;
        for (int i = 0; i < count; i++) {
            if (runOf[i] != r) {
                continue;
            }
            setCurrentKey(keys[i]);
            if (!putStates(i)) {
                continue;
            }
            int target = n++;
            int from = rowOf[i];
            if (from != target) {
                runner.swapRows(target, from);
                int displaced = recordAt[target];
                recordAt[from] = displaced;
                if (displaced >= 0) {
                    rowOf[displaced] = from;
                }
                recordAt[target] = i;
                rowOf[i] = target;
            }
            runMembers[target] = i;
            runRecords[target] = records[i];
        }
        if (n == 0) {
            return;
        }
        runs.inc();
        runner.scoreBatch(runRecords, n, runOutcomes);
        // The run's rows are spent (scoreBatch may have reordered them among themselves).
        for (int j = 0; j < n; j++) {
            recordAt[j] = -1;
            runRecords[j] = null;
        }
    }

    /**
     * Puts the current key's states (or the initial ones) and the constants into record {@code i}'s row. A
     * stored state that no longer fits the model (restored into a changed model) fails the record: it cannot
     * be scored with its sequence's state, and the initial state would give a plausible but wrong prediction.
     * A reset record clears that state all the same, as a reset does whatever happens to its record, so the
     * key's next record starts from the initial state.
     */
    private boolean putStates(int i) throws Exception {
        RecordInputs row = runner.row(rowOf[i]);
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
                    failures[i] = new RecordConversionException(fits + "This record resets the key, so the stored"
                            + " state is cleared: the key's next record starts from the initial state");
                } else {
                    failures[i] = new RecordConversionException(
                            fits + "A record for which resetWhen holds clears" + " it (so does the state's ttl)");
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
            results[i] = result;
        }

        @Override
        public void failed(int index, Exception reason) throws Exception {
            int i = runMembers[index];
            failures[i] = reason;
            if (resets[i]) {
                setCurrentKey(keys[i]);
                clearStates();
            }
        }

        @Override
        public void drift(DriftReport report) {
            output.collect(DriftReport.TAG, new StreamRecord<>(report));
        }

        @Override
        public void placement(FallbackReport report) {
            output.collect(FallbackReport.TAG, new StreamRecord<>(report));
        }
    }

    /** Runs scored since open (for tests of batching across keys). */
    public long runCount() {
        return runs.getCount();
    }

    @Override
    public void close() throws Exception {
        try {
            if (runner != null) {
                runner.close();
                runner = null;
            }
        } finally {
            super.close();
        }
    }
}
