package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.DriftReport;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.OutputRow;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.tensor.RecordInputs;
import java.util.Arrays;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.util.Preconditions;

/**
 * The records buffered in front of one {@link InferenceRunner}, encoded into its batch rows as they arrive,
 * and the one definition of when a batch is due: {@code maxBatchSize} records (1 for a model without a free
 * batch axis), {@code maxBufferedBytes} of input as packed (padding to the widest record counted, checked
 * <em>before</em> a record joins: one that would cross the bound is parked in the runner's spare row while
 * the buffer is drained, and starts the next batch), or {@code maxBatchDelay} after the first record. It
 * also owns the object-reuse copy and the batch metrics ({@link BatchMetrics}).
 *
 * <p>The batching operator holds one, the many-model operator one per model, the stateful operator one that
 * it drains in per-key runs ({@link #scoreRun}), and the asynchronous SQL runtime one without timers. Used on
 * one thread; not thread-safe.
 *
 * <pre>{@code
 * buffer.add(record, hasTimestamp, timestamp, this::flush); // throws RecordConversionException: a dead letter
 * if (buffer.due()) {
 *     flush();
 * }
 *
 * void flush() {
 *     int count = buffer.take();
 *     buffer.score(count, reports);
 *     buffer.complete(count, emitter); // in input order: each record's result, or its dead letter
 * }
 * }</pre>
 *
 * @param <IN> the record type
 * @param <OUT> the result type
 */
@Internal
public final class RecordBuffer<IN, OUT> {
    /** Scores the buffer when a record cannot join it; false when the buffer's runner is gone with it. */
    @FunctionalInterface
    public interface Drain {
        boolean drain() throws Exception;
    }

    /** The processing-time clock and timer of the owning operator. */
    public interface Timers {
        long now();

        /** Calls the owner back at {@code time} (it then asks {@link #expired}). */
        void register(long time);
    }

    /** Where a completed batch goes, record by record in input order. */
    public interface Emitter<IN, OUT> {
        void scored(int index, OUT result, boolean hasTimestamp, long timestamp) throws Exception;

        void failed(int index, IN record, Exception reason) throws Exception;
    }

    /** Where the reports a run may produce go (side outputs). */
    public interface Reports {
        void drift(DriftReport report) throws Exception;

        void placement(FallbackReport report) throws Exception;
    }

    private static final long NO_TIMER = Long.MIN_VALUE;

    private final BatchPolicy policy;
    private final BatchMetrics metrics;
    private final Timers timers;
    private final TypeSerializer<IN> copier;
    private final long delayMillis;
    /** No delay, and timers to honour it: every record is a batch of its own. */
    private final boolean batchPerRecord;

    private InferenceRunner<IN, OUT> runner;
    private int capacity;
    private BatchBytes bytes;
    private Object[] records;
    private Object[] results;
    private Exception[] failures;
    private long[] timestamps;
    private boolean[] hasTimestamp;

    private int size;
    private long bufferedBytes;
    private long oldestArrivalNanos;
    private long deadline = Long.MAX_VALUE;
    /** The time of this buffer's pending timer (registered, not yet fired), or {@link #NO_TIMER}. */
    private long timerAt = NO_TIMER;

    private long batchStartNanos;
    private boolean batchFailed;

    // Per-key runs of one drain: which row holds each buffered record, and which record each row holds.
    private int[] rowOf;
    private int[] recordAt;
    private Object[] runRecords;
    private boolean runsPrepared;
    private Reports reports;
    private final InferenceRunner.Outcomes<OUT> batchOutcomes = new BatchOutcomes();

    /**
     * A buffer in front of {@code runner} (open), for batches of {@code capacity} records at most.
     *
     * @param timers the owner's processing-time service, or null for a buffer drained by its owner alone (no
     *     delay trigger)
     * @param copier the record type's serializer when the source reuses objects, else null
     */
    public RecordBuffer(
            InferenceRunner<IN, OUT> runner,
            int capacity,
            BatchPolicy policy,
            BatchMetrics metrics,
            Timers timers,
            TypeSerializer<IN> copier) {
        Preconditions.checkArgument(capacity >= 1, "capacity must be at least 1, was %s", capacity);
        this.policy = policy;
        this.metrics = Preconditions.checkNotNull(metrics, "metrics");
        this.timers = timers;
        // Records declared immutable are kept as they come: the object-reuse copy is for sources that refill one.
        this.copier = policy.immutableRecords() ? null : copier;
        this.delayMillis = timers == null ? 0 : policy.maxBatchDelay().toMillis();
        this.batchPerRecord = timers != null && delayMillis == 0;
        serve(runner, capacity);
    }

    /**
     * The runner this buffer encodes for from now on (a new model version): the buffer must be empty, as
     * records are encoded into the rows of the runner they were buffered for.
     */
    public void serve(InferenceRunner<IN, OUT> next, int nextCapacity) {
        Preconditions.checkState(size == 0, "The buffer holds %s records of the runner it serves", size);
        boolean sameShape = runner != null && nextCapacity == capacity;
        this.runner = next;
        this.capacity = nextCapacity;
        this.bytes = new BatchBytes(next);
        if (!sameShape) {
            records = new Object[nextCapacity];
            results = new Object[nextCapacity];
            failures = new Exception[nextCapacity];
            timestamps = new long[nextCapacity];
            hasTimestamp = new boolean[nextCapacity];
            rowOf = new int[nextCapacity];
            recordAt = new int[nextCapacity];
            runRecords = new Object[nextCapacity];
        }
    }

    /**
     * The record to buffer: a copy when the source reuses objects (it hands the same instance again once
     * {@code processElement} returns, and the buffered record would change under the decoder), as Flink's
     * {@code AsyncWaitOperator} keeps one; else (no object reuse, or records declared immutable by {@code
     * BatchPolicy.immutableRecords}) {@code record} itself.
     */
    public IN own(IN record) {
        return copier == null ? record : copier.copy(record);
    }

    /**
     * Encodes {@code record} and buffers it. A record that would take the buffer past {@code maxBufferedBytes}
     * waits in the spare row while {@code drainFirst} scores the buffer, then starts the next batch.
     *
     * @return false when {@code drainFirst} found the runner gone (its session broke): the record is not
     *     buffered, and the owner decides its fate
     * @throws RecordConversionException when the record does not encode; nothing is buffered
     */
    public boolean add(IN record, boolean recordHasTimestamp, long timestamp, Drain drainFirst) throws Exception {
        InferenceRunner<IN, OUT> encoder = runner;
        RecordInputs row = encoder.row(size);
        encoder.encode(record, row, policy.rejectNaN());
        if (size > 0 && bytes.with(row, size) > policy.maxBufferedBytes()) {
            encoder.swapRows(size, capacity); // park the encoded record in the spare row while the buffer runs
            if (!drainFirst.drain()) {
                return false;
            }
            Preconditions.checkState(size == 0 && runner == encoder, "The drain left the buffer or its runner");
            encoder.swapRows(capacity, 0);
        }
        // The encoder's arrays may be the record's own (reused with it) or a scratch array it refills. Detached
        // after the parking above: as the first row of its batch it starts the staging over (nothing encodes
        // while the buffer runs, so the arrays are still the record's).
        row.detach(size);
        bufferedBytes = bytes.with(row, size);
        bytes.add(row, size);
        records[size] = record;
        hasTimestamp[size] = recordHasTimestamp;
        timestamps[size] = timestamp;
        if (size == 0) {
            oldestArrivalNanos = System.nanoTime();
        }
        size++;
        if (size == 1 && delayMillis > 0 && capacity > 1) {
            deadline = timers.now() + delayMillis;
            armTimer();
        }
        return true;
    }

    /**
     * Makes sure a timer fires by the current batch's deadline, registering one only when no timer of this buffer
     * is pending for that time or earlier: a batch drained by size leaves its timer pending, and the next batch's
     * deadline is later, so that timer serves it ({@link #expired} registers the deadline when it fires early).
     * One timer per delay instead of one per batch: a registration wakes Flink's timer thread and every firing
     * is a mail on the task thread, both per batch before.
     */
    private void armTimer() {
        if (timerAt != NO_TIMER && timerAt <= deadline) {
            return;
        }
        timerAt = deadline;
        timers.register(deadline);
    }

    /**
     * The oldest buffered record arrived at {@code nanos} ({@link System#nanoTime}), before it was added: for an
     * owner that gathers records elsewhere first (SQL's queue), so that the queue time counts that wait too.
     */
    public void arrivedAt(long nanos) {
        if (size > 0) {
            oldestArrivalNanos = Math.min(oldestArrivalNanos, nanos);
        }
    }

    /**
     * Whether a size or byte trigger fired (or the owner's policy has no delay): the owner drains the buffer
     * now. A buffer without timers is drained when its owner decides, or by these two triggers.
     */
    public boolean due() {
        return size >= capacity || bufferedBytes >= policy.maxBufferedBytes() || (size > 0 && batchPerRecord);
    }

    /**
     * Whether the buffer's delay passed at {@code time}: the owner calls this whenever one of its processing-time
     * timers fires, and drains the buffer when it says so. A timer of a batch already drained by size fires
     * before the current batch's deadline: the buffer then registers that deadline.
     */
    public boolean expired(long time) {
        if (timerAt != NO_TIMER && time >= timerAt) {
            timerAt = NO_TIMER; // this buffer's timer fired (timers fire in time order)
        }
        if (size == 0 || deadline == Long.MAX_VALUE) {
            return false;
        }
        if (time >= deadline) {
            return true;
        }
        armTimer(); // the timer of a batch drained earlier fired before this one's deadline
        return false;
    }

    /** Records buffered. */
    public int size() {
        return size;
    }

    /** Records one batch may hold. */
    public int capacity() {
        return capacity;
    }

    /** The buffer's bytes as {@code maxBufferedBytes} counts them. */
    public long bufferedBytes() {
        return bufferedBytes;
    }

    /** The runner this buffer encodes for. */
    public InferenceRunner<IN, OUT> runner() {
        return runner;
    }

    /** Buffered record {@code i}. */
    @SuppressWarnings("unchecked")
    public IN record(int i) {
        return (IN) records[i];
    }

    /**
     * Starts a drain: returns how many records it covers, and the buffer is empty from here on, so a failure
     * thrown while they are scored cannot emit them twice. Follow with {@link #score} or {@link #scoreRun},
     * then {@link #complete}.
     */
    public int take() {
        int count = size;
        if (count == 0) {
            return 0;
        }
        batchStartNanos = System.nanoTime();
        metrics.queueTimeMicros.update((batchStartNanos - oldestArrivalNanos) / 1000); // the oldest record's wait
        size = 0;
        bufferedBytes = 0;
        deadline = Long.MAX_VALUE;
        runsPrepared = false;
        batchFailed = false;
        // Outcomes of a drain that failed before completing (the owner caught the failure) must not leak in.
        Arrays.fill(results, 0, count, null);
        Arrays.fill(failures, 0, count, null);
        return count;
    }

    /** Scores the {@code count} records taken as one batch (the engine groups and isolates as needed). */
    public void score(int count, Reports to) throws Exception {
        reports = to;
        batchFailed |= runner.scoreBatch(records, count, batchOutcomes);
    }

    /**
     * The row that holds taken record {@code i} during per-key runs: where the owner puts the inputs it supplies
     * (a key's states) before the record's run.
     */
    public RecordInputs row(int i) {
        prepareRuns();
        return runner.row(rowOf[i]);
    }

    /**
     * Scores taken records {@code members[0 .. n)} as one run: their rows move to the front, in that order (rows
     * of earlier runs are spent and may be overwritten). {@code outcomes} hears of each by its position in
     * {@code members}, and the owner reports it with {@link #scored} or {@link #failed}.
     */
    public void scoreRun(int[] members, int n, InferenceRunner.Outcomes<OUT> outcomes) throws Exception {
        prepareRuns();
        for (int target = 0; target < n; target++) {
            int i = members[target];
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
            runRecords[target] = records[i];
        }
        try {
            batchFailed |= runner.scoreBatch(runRecords, n, outcomes);
        } finally {
            // The run's rows are spent (scoreBatch may have reordered them among themselves).
            for (int j = 0; j < n; j++) {
                recordAt[j] = -1;
                runRecords[j] = null;
            }
        }
    }

    private void prepareRuns() {
        if (!runsPrepared) {
            for (int i = 0; i < capacity; i++) {
                rowOf[i] = i;
                recordAt[i] = i;
            }
            runsPrepared = true;
        }
    }

    /** Taken record {@code i} scored as {@code result}. */
    public void scored(int i, OUT result) {
        results[i] = result;
    }

    /** Taken record {@code i} failed (a dead letter with {@code reason}). */
    public void failed(int i, Exception reason) {
        failures[i] = reason;
    }

    /** Fails every taken record that has no outcome yet with {@code reason} (its runner broke): a failed batch. */
    public void failUnscored(int count, Exception reason) {
        batchFailed = true;
        for (int i = 0; i < count; i++) {
            if (results[i] == null && failures[i] == null) {
                failures[i] = reason;
            }
        }
    }

    /**
     * Hands the {@code count} taken records to {@code emitter} in input order, each as its result or its
     * failure, and counts the batch.
     */
    @SuppressWarnings("unchecked")
    public void complete(int count, Emitter<IN, OUT> emitter) throws Exception {
        int scored = 0;
        try {
            for (int i = 0; i < count; i++) {
                if (failures[i] != null) {
                    emitter.failed(i, (IN) records[i], failures[i]);
                } else {
                    emitter.scored(i, (OUT) results[i], hasTimestamp[i], timestamps[i]);
                    scored++;
                }
            }
        } finally {
            metrics.inferences.inc(scored); // once per batch: the records emitted so far, even if one throws
            discard(count);
        }
        metrics.batches.inc();
        metrics.batchSizes.update(count);
        metrics.batchLatencyMicros.update((System.nanoTime() - batchStartNanos) / 1000);
        if (batchFailed) {
            metrics.failedBatches.inc();
        }
    }

    private void discard(int count) {
        Arrays.fill(records, 0, count, null);
        Arrays.fill(results, 0, count, null);
        Arrays.fill(failures, 0, count, null);
        reports = null;
    }

    /** The metrics this buffer updates. */
    public BatchMetrics metrics() {
        return metrics;
    }

    /** The staging of the row the next record is encoded into (tests of encoder array reuse). */
    @VisibleForTesting
    public RecordInputs nextRow() {
        return runner.row(size);
    }

    /** Outcomes of a whole-buffer run, by buffer index. */
    private final class BatchOutcomes implements InferenceRunner.Outcomes<OUT> {
        @Override
        public void scored(int index, OUT result) {
            results[index] = result;
        }

        @Override
        public void scored(int index, OUT result, OutputRow outputs) {
            results[index] = result;
        }

        @Override
        public void failed(int index, Exception reason) {
            failures[index] = reason;
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
}
