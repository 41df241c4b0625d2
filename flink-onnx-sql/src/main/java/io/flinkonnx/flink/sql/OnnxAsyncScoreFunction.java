package io.flinkonnx.flink.sql;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.SystemicFailureException;
import io.flinkonnx.flink.engine.BatchMetrics;
import io.flinkonnx.flink.engine.InferenceRunner;
import io.flinkonnx.flink.engine.RecordBuffer;
import io.flinkonnx.model.ModelSignature;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.annotation.VisibleForTesting;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.functions.AsyncScalarFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.util.Preconditions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An ONNX model as a SQL scalar function that scores the rows in flight as one batch: Flink's async scalar
 * operator keeps up to {@code table.exec.async-scalar.max-concurrent-operations} rows in flight (Flink's default
 * 10; raise it to 64 or more for bigger batches), and one worker thread per function instance gathers them
 * into batches of at most {@code maxBatchSize} rows (all models together), one ORT run per model, waiting at most 2 ms for rows still being
 * handed over, and never for more rows than Flink keeps in flight. Same arguments, result types and bad-row handling as {@link OnnxScoreFunction} (which runs ORT
 * once per row); a row that does not encode or makes its run fail gets its own error (or NULL, with
 * {@code nullOnError}), the other rows of the batch are scored; a broken session (every run failing) fails the
 * job in both modes.
 *
 * <pre>
 * -- SQL: the model URI is the first (literal) argument
 * SET 'table.exec.async-scalar.max-concurrent-operations' = '128';
 * CREATE FUNCTION score AS 'io.flinkonnx.flink.sql.OnnxAsyncScoreFunction';
 * SELECT id, score('s3://models/fraud.onnx', features) FROM txns;
 * </pre>
 *
 * <pre>{@code
 * // Table API: an instance bound to a model, called without the URI
 * tEnv.createTemporarySystemFunction("fraud", new OnnxAsyncScoreFunction("s3://models/fraud.onnx"));
 * }</pre>
 *
 * Flink runs async scalar functions in streaming queries (the results keep the input order).
 */
@PublicEvolving
public class OnnxAsyncScoreFunction extends AsyncScalarFunction {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(OnnxAsyncScoreFunction.class);

    /**
     * The longest the worker waits for more rows to join a batch, while fewer than the rows Flink keeps in
     * flight have arrived (2 ms).
     */
    static final long MAX_GATHER_NANOS = 2_000_000L;

    /** Rows of one model in one ORT run at most, by default. */
    public static final int DEFAULT_MAX_BATCH_SIZE = 64;

    /** SQL has no side outputs: drift and placement reports go to the gauges and the log. */
    private static final RecordBuffer.Reports NO_SIDE_OUTPUTS = new RecordBuffer.Reports() {
        @Override
        public void drift(io.flinkonnx.flink.DriftReport report) {}

        @Override
        public void placement(io.flinkonnx.flink.FallbackReport report) {}
    };

    private final String boundModel;
    private final boolean nullOnError;
    private final int maxBatchSize;

    private transient FunctionContext context;
    private transient BlockingQueue<Pending> queue;
    private transient Thread worker;
    private transient volatile boolean running;
    private transient volatile Throwable failure;
    /** Rows handed to {@link #eval} and not completed yet. */
    private transient AtomicInteger inFlight;
    /** The most rows seen in flight at once: Flink's capacity, as far as the worker can tell (the worker's). */
    private transient int capacitySeen;
    /** One runner per model argument, in first-use order; the worker's alone (close() after it left). */
    private transient Map<String, Scoring> models;
    /** Every opened runner, for close() to cancel a run in flight. */
    private transient List<InferenceRunner<Object[], Object>> opened;

    /** For SQL {@code CREATE FUNCTION}: the model URI is the first argument of every call. */
    public OnnxAsyncScoreFunction() {
        this(null);
    }

    /**
     * Bound to {@code modelUri}: calls pass only the model's inputs.
     *
     * @param modelUri the model, or null when the URI is the first argument of every call
     */
    public OnnxAsyncScoreFunction(String modelUri) {
        this(modelUri, false, DEFAULT_MAX_BATCH_SIZE);
    }

    /**
     * Bound to {@code modelUri} (or null: the URI is the first argument), scoring at most {@code maxBatchSize}
     * rows per ORT run; with {@code nullOnError} a row the model cannot score returns NULL instead of failing
     * the job. For example {@code new OnnxAsyncScoreFunction("/models/fraud.onnx", true, 128)}.
     *
     * @param modelUri the model, or null when the URI is the first argument of every call
     * @param nullOnError whether a bad row returns NULL (else its error fails the job)
     * @param maxBatchSize rows gathered at most, of all models together (one ORT run per model), at least 1
     * @throws IllegalArgumentException when {@code maxBatchSize} is below 1
     */
    public OnnxAsyncScoreFunction(String modelUri, boolean nullOnError, int maxBatchSize) {
        Preconditions.checkArgument(maxBatchSize >= 1, "maxBatchSize must be at least 1, got %s", maxBatchSize);
        this.boundModel = modelUri;
        this.nullOnError = nullOnError;
        this.maxBatchSize = maxBatchSize;
    }

    /** A row in flight: its model, its arguments, and the result Flink waits for. */
    private static final class Pending {
        final String model;
        final Object[] values;
        final CompletableFuture<Object> result;

        Pending(String model, Object[] values, CompletableFuture<Object> result) {
            this.model = model;
            this.values = values;
            this.result = result;
        }
    }

    /** A model's runner, its record buffer and the requests of the rows buffered, by buffer index. */
    private static final class Scoring {
        final InferenceRunner<Object[], Object> runner;
        final RecordBuffer<Object[], Object> buffer;
        final List<Pending> buffered = new ArrayList<>();
        /** Scores the rows before one that would overflow the byte bound: made once, not per row. */
        RecordBuffer.Drain drainFirst;

        Scoring(InferenceRunner<Object[], Object> runner, RecordBuffer<Object[], Object> buffer) {
            this.runner = runner;
            this.buffer = buffer;
        }
    }

    /** A failure of the rows drained ahead of a row, carried past that row's own error handling. */
    private static final class DrainFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final Exception failure;

        DrainFailure(Exception failure) {
            super(failure);
            this.failure = failure;
        }
    }

    @Override
    public void open(FunctionContext context) {
        prepare(context);
        int subtask = context == null ? 0 : context.getTaskInfo().getIndexOfThisSubtask();
        this.worker = new Thread(this::work, "onnx-score-" + subtask);
        worker.setDaemon(true);
        worker.start();
    }

    /** Everything of {@link #open} but the worker (tests score on their own thread). */
    @VisibleForTesting
    void prepare(FunctionContext context) {
        this.context = context;
        this.models = new LinkedHashMap<>();
        this.opened = new ArrayList<>();
        // Flink bounds the rows in flight; the queue only has to hold them (a full one blocks the task thread).
        this.queue = new ArrayBlockingQueue<>(Math.max(4 * maxBatchSize, 1024));
        this.running = true;
        this.inFlight = new AtomicInteger();
        this.capacitySeen = 1;
    }

    /**
     * Queues one row for scoring; {@code result} completes with the model's outputs once its batch ran.
     *
     * @param result what Flink waits for: the outputs (an {@code ARRAY}, or a {@code ROW} of named outputs) as
     *     Flink's internal data ({@code ArrayData}, {@code RowData}), or null
     * @param args the model URI (unless bound), then the inputs, as in {@link OnnxScoreFunction}
     */
    public void eval(CompletableFuture<Object> result, Object... args) {
        if (!running) {
            result.completeExceptionally(closed());
            return;
        }
        Pending p = pendingOf(result, args);
        if (p == null) {
            return;
        }
        inFlight.incrementAndGet();
        try {
            queue.put(p);
            // close() may have drained the queue between the check above and the put: never strand a request.
            if (!running && queue.remove(p)) {
                result.completeExceptionally(closed());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            result.completeExceptionally(e);
        }
    }

    /** The request of one call, or null when it failed already (a NULL model URI). */
    private Pending pendingOf(CompletableFuture<Object> result, Object[] args) {
        int first = boundModel == null ? 1 : 0;
        String uri = boundModel != null ? boundModel : args[0] == null ? null : args[0].toString();
        if (uri == null) {
            result.completeExceptionally(
                    new IllegalArgumentException("The model URI of an ONNX score function is NULL"));
            return null;
        }
        Object[] values = new Object[args.length - first];
        System.arraycopy(args, first, values, 0, values.length);
        Pending p = new Pending(uri, values, result);
        try {
            // ARRAY arguments come as Flink's ArrayData, which the planner may reuse once eval returns: copied
            // here into the primitive arrays the ONNX inputs take (one copy, no boxing).
            ModelSignature signature = null;
            for (int i = 0; i < values.length; i++) {
                if (values[i] instanceof ArrayData) {
                    if (signature == null) {
                        signature = OnnxScoreFunction.signature(uri);
                    }
                    values[i] = primitive((ArrayData) values[i], signature, i);
                }
            }
        } catch (RecordConversionException e) {
            inFlight.incrementAndGet(); // deliverFailure counts it out
            deliverFailure(p, e);
            return null;
        }
        return p;
    }

    private static Object primitive(ArrayData a, ModelSignature signature, int argument) {
        List<io.flinkonnx.model.TensorSpec> inputs = signature.inputs();
        io.flinkonnx.model.TensorSpec in = inputs.get(Math.min(argument, inputs.size() - 1));
        for (int k = 0; k < a.size(); k++) {
            if (a.isNullAt(k)) {
                throw new RecordConversionException("Element " + k + " of the ARRAY argument for ONNX input '"
                        + in.name() + "' is NULL; it takes numbers, not NULLs");
            }
        }
        return SqlTypes.fromArray(a, in.elementType());
    }

    /**
     * Scores {@code calls} (each the arguments of one {@code eval}) as rows in flight together, on the calling
     * thread, after {@link #prepare} (for tests: the worker does the same with what it finds queued).
     */
    @VisibleForTesting
    List<CompletableFuture<Object>> scoreTogether(List<Object[]> calls) throws Exception {
        List<CompletableFuture<Object>> results = new ArrayList<>();
        List<Pending> batch = new ArrayList<>();
        for (Object[] args : calls) {
            CompletableFuture<Object> result = new CompletableFuture<>();
            results.add(result);
            Pending p = pendingOf(result, args);
            if (p != null) {
                inFlight.incrementAndGet();
                batch.add(p);
            }
        }
        score(batch);
        return results;
    }

    private void work() {
        List<Pending> batch = new ArrayList<>();
        try {
            while (running) {
                Pending next = queue.poll(100, TimeUnit.MILLISECONDS);
                if (next == null) {
                    continue;
                }
                batch.add(next);
                queue.drainTo(batch, maxBatchSize - 1);
                // More rows may come while fewer than Flink's capacity are in flight (the task thread is handing
                // them over): wait for them up to the delay, never for rows that cannot come.
                long deadline = System.nanoTime() + MAX_GATHER_NANOS;
                while (batch.size() < maxBatchSize) {
                    capacitySeen = Math.max(capacitySeen, inFlight.get());
                    long left = deadline - System.nanoTime();
                    if (batch.size() >= capacitySeen || left <= 0) {
                        break;
                    }
                    Pending more = queue.poll(left, TimeUnit.NANOSECONDS);
                    if (more == null) {
                        break;
                    }
                    batch.add(more);
                    queue.drainTo(batch, maxBatchSize - batch.size());
                }
                score(batch);
                batch.clear();
            }
        } catch (InterruptedException e) {
            // closing
        } catch (Throwable t) {
            // A systemic failure (every run failing), a model that does not load, or a bug: the job fails.
            failure = t;
            running = false;
            batch.forEach(p -> p.result.completeExceptionally(t));
            if (models != null) {
                for (Scoring s : models.values()) {
                    s.buffered.forEach(p -> p.result.completeExceptionally(t));
                    s.buffered.clear();
                }
            }
            List<Pending> queued = new ArrayList<>();
            queue.drainTo(queued);
            queued.forEach(p -> p.result.completeExceptionally(closed()));
        } finally {
            batch.forEach(p -> p.result.completeExceptionally(closed())); // no-op for the completed ones
        }
    }

    /** Scores the rows in flight: each model's rows in runs of at most {@code maxBatchSize}. */
    private void score(List<Pending> batch) throws Exception {
        Scoring last = null;
        for (Pending p : batch) {
            Scoring s = last != null && last.runner.spec().model().uri().equals(p.model) ? last : scoringOf(p.model);
            last = s;
            if (s.buffer.size() == s.buffer.capacity()) {
                scoreBuffered(s);
            }
            try {
                s.buffer.add(p.values, false, 0, s.drainFirst);
                s.buffered.add(p);
            } catch (DrainFailure e) {
                throw e.failure;
            } catch (RuntimeException e) {
                deliverFailure(p, e); // the row did not encode
            }
        }
        for (Scoring s : models.values()) {
            scoreBuffered(s);
        }
    }

    private void scoreBuffered(Scoring s) throws Exception {
        int count = s.buffer.take();
        if (count == 0) {
            return;
        }
        try {
            s.buffer.score(count, NO_SIDE_OUTPUTS);
            s.buffer.complete(count, new RecordBuffer.Emitter<>() {
                @Override
                public void scored(int index, Object result, boolean hasTimestamp, long timestamp) {
                    Pending p = s.buffered.get(index);
                    inFlight.decrementAndGet(); // before completing: Flink may hand over the next row at once
                    p.result.complete(result);
                }

                @Override
                public void failed(int index, Object[] row, Exception reason) {
                    deliverFailure(s.buffered.get(index), reason);
                }
            });
        } finally {
            s.buffered.clear();
        }
    }

    /** The runner of model {@code uri}, opened (on the worker) at its first row. */
    private Scoring scoringOf(String uri) throws Exception {
        Scoring s = models.get(uri);
        if (s != null) {
            return s;
        }
        if (models.size() >= OnnxScoreFunction.MAX_MODELS_PER_INSTANCE) {
            throw new IllegalArgumentException("An ONNX score function instance scores with at most "
                    + OnnxScoreFunction.MAX_MODELS_PER_INSTANCE + " different models (one session each), and model "
                    + uri + " would be one more beyond " + models.keySet()
                    + ": pass the model as a literal, or split the query");
        }
        ModelSignature signature = OnnxScoreFunction.signature(uri);
        OnnxInferenceSpec<Object[], Object> spec = OnnxInference.<Object[]>builder(uri)
                .encoder((values, row) -> OnnxScoreFunction.encode(signature, values, row))
                .decoder((values, out) -> OnnxScoreFunction.decodeInternal(signature, out), null)
                .buildUnchecked();
        InferenceRunner<Object[], Object> runner = new InferenceRunner<>(spec);
        // The first model keeps the library's metric group; further ones are told apart by a 'model' variable.
        MetricGroup metrics = context == null
                ? new UnregisteredMetricsGroup()
                : OnnxScoreFunction.metricGroup(context, uri, models.isEmpty());
        runner.open(
                context == null ? "sql-function" : context.getTaskInfo().getAllocationIDAsString(),
                context == null ? 0 : context.getTaskInfo().getIndexOfThisSubtask(),
                metrics,
                maxBatchSize,
                BatchPolicy.defaults());
        synchronized (opened) {
            opened.add(runner);
        }
        int capacity = runner.batchable() ? maxBatchSize : 1;
        try {
            s = new Scoring(
                    runner,
                    new RecordBuffer<>(
                            runner, capacity, BatchPolicy.defaults(), new BatchMetrics(metrics), null, null));
        } catch (RuntimeException e) {
            runner.close();
            throw e;
        }
        final Scoring target = s;
        s.drainFirst = () -> {
            try {
                scoreBuffered(target); // the byte bound: the rows before this one run first
            } catch (Exception e) {
                throw new DrainFailure(e); // not this row's failure: the worker fails the batch
            }
            return true;
        };
        models.put(uri, s);
        return s;
    }

    /** A bad row's outcome: its request fails, or with {@code nullOnError} completes with NULL. */
    private void deliverFailure(Pending p, Exception e) {
        inFlight.decrementAndGet();
        CompletableFuture<Object> result = p.result;
        if (e instanceof SystemicFailureException) {
            // the session is broken, not the row: the job fails and its restart reloads it
            result.completeExceptionally(e);
        } else if (nullOnError) {
            LOG.debug("Row not scored, NULL returned: {}", e.getMessage());
            result.complete(null);
        } else {
            result.completeExceptionally(
                    e instanceof RecordConversionException
                            ? e
                            : new RecordConversionException(InferenceRunner.reasonOf(e), e));
        }
    }

    private IllegalStateException closed() {
        return new IllegalStateException(
                "ONNX score function" + (boundModel == null ? "" : " of model " + boundModel) + " is closed"
                        + (failure == null ? "" : " after a failure: " + failure),
                failure);
    }

    /**
     * Stops the worker, cancelling a run in flight (ORT's terminate flag) rather than closing a session under
     * it, waits for it to leave, then fails every request still queued and closes the sessions.
     */
    @Override
    public void close() {
        running = false;
        boolean interrupted = false;
        try {
            if (worker != null) {
                synchronized (opened) {
                    opened.forEach(InferenceRunner::terminate);
                }
                interrupted = OnnxAsyncPredictFunction.stopAndJoin(worker);
                worker = null;
            }
        } finally {
            if (queue != null) {
                List<Pending> left = new ArrayList<>();
                queue.drainTo(left);
                left.forEach(p -> p.result.completeExceptionally(closed()));
            }
            RuntimeException closeFailure = null;
            if (opened != null) {
                for (InferenceRunner<Object[], Object> runner : opened) {
                    try {
                        runner.close();
                    } catch (RuntimeException e) {
                        if (closeFailure == null) {
                            closeFailure = e;
                        } else {
                            closeFailure.addSuppressed(e);
                        }
                    }
                }
                opened = null;
            }
            models = null;
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            if (closeFailure != null) {
                throw closeFailure;
            }
        }
    }

    /** The number of models opened so far (for tests). */
    @VisibleForTesting
    public int modelsOpened() {
        return opened == null ? 0 : opened.size();
    }

    /** Runs started by the runner of model {@code uri}, or -1 when it is not open (for tests). */
    @VisibleForTesting
    public long runsStarted(String uri) {
        List<InferenceRunner<Object[], Object>> open = opened;
        if (open == null) {
            return -1;
        }
        synchronized (open) {
            for (InferenceRunner<Object[], Object> r : open) {
                if (r.spec().model().uri().equals(uri)) {
                    return r.runsStarted();
                }
            }
        }
        return -1;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return OnnxScoreFunction.typeInference(boundModel, true);
    }
}
