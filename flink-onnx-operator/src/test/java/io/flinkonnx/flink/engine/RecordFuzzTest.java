package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.HardeningModels;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.Runners;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.io.IOException;
import java.io.Serializable;
import java.lang.reflect.Array;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.assertj.core.api.Assertions;

/**
 * Random records, good and bad, thrown at the batching operator and the map function's path on real
 * models. For every record: a prediction equal to its alone-run, or a dead letter with a reason, never
 * both, never neither; the JVM survives (one model divides by the sequence length: an empty sequence
 * reaching ORT would kill it); no session stays open and the process does not grow.
 *
 * <p>Tries per property: {@code jqwik.tries.default} (junit-platform.properties keeps CI to seconds;
 * {@code -Djqwik.tries.default=2000} runs more). The cases tried are printed at the end.
 */
class RecordFuzzTest {
    private static final TypeInformation<FuzzRecord> RECORD = Types.GENERIC(FuzzRecord.class);
    private static final TypeInformation<double[]> DOUBLES = PrimitiveArrayTypeInfo.DOUBLE_PRIMITIVE_ARRAY_TYPE_INFO;
    private static final long MAX_RECORD_BYTES = 1 << 20;
    private static final AtomicLong RECORDS = new AtomicLong();
    private static final AtomicLong DEAD_LETTERS = new AtomicLong();
    private static final AtomicLong CASES = new AtomicLong();
    private static final int WARM_UP_CASES = 10;

    private static Path dir;
    private static Map<String, FuzzModel> models;
    private static long rssBeforeKb;
    private static long heapBeforeMb;

    /** A model under test: its file, the input records feed, the output read back. */
    private static final class FuzzModel {
        final String path;
        final String input;
        final String output;
        final boolean floatInput;
        final int valueMultiple;

        FuzzModel(Path path, String input, String output, boolean floatInput, int valueMultiple) {
            this.path = path.toString();
            this.input = input;
            this.output = output;
            this.floatInput = floatInput;
            this.valueMultiple = valueMultiple;
        }
    }

    /** One fuzzed record: an id, what it puts in the model's input, and an explicit shape or null. */
    public static final class FuzzRecord implements Serializable {
        private static final long serialVersionUID = 1L;
        final int id;
        final Object payload;
        final long[] shape;

        FuzzRecord(int id, Object payload, long[] shape) {
            this.id = id;
            this.payload = payload;
            this.shape = shape;
        }

        @Override
        public String toString() {
            String p = payload == null
                    ? "null"
                    : payload.getClass().isArray()
                            ? payload.getClass().getComponentType() + "[" + Array.getLength(payload) + "]"
                            : payload.getClass().getSimpleName();
            return "#" + id + " " + p + (shape == null ? "" : " shape " + Arrays.toString(shape));
        }
    }

    @BeforeContainer
    static void writeModels() throws IOException {
        dir = Files.createTempDirectory("flink-onnx-fuzz");
        models = new HashMap<>();
        models.put(
                "mlp", new FuzzModel(new TestModels.Mlp(4, 8, 2).writeTo(dir.resolve("mlp.onnx")), "x", "y", true, 4));
        models.put("mean", new FuzzModel(HardeningModels.writeMeanPool(dir.resolve("mean.onnx")), "x", "y", true, 1));
        models.put("rnn", new FuzzModel(HardeningModels.writeRnn(dir.resolve("rnn.onnx")), "x", "h", true, 2));
        models.put(
                "tokens",
                new FuzzModel(TestModels.writeTokenModel(dir.resolve("tokens.onnx")), "input_ids", "masked", false, 1));
        models.put("gather", new FuzzModel(TestModels.writeGather(dir.resolve("gather.onnx")), "idx", "row", false, 1));
        models.put(
                "intmean",
                new FuzzModel(
                        HardeningModels.writeIntegerMeanBySequenceLength(dir.resolve("im.onnx")),
                        "ids",
                        "avg",
                        false,
                        1));
    }

    @AfterContainer
    static void report() throws IOException {
        long rssGrowthMb = CASES.get() > WARM_UP_CASES ? (rssKb() - rssBeforeKb) / 1024 : 0;
        long heapGrowthMb = CASES.get() > WARM_UP_CASES ? (Runtime.getRuntime().totalMemory() >> 20) - heapBeforeMb : 0;
        System.out.printf(
                "RecordFuzzTest: %d cases tried, %d records, %d dead letters; after %d warm-up cases RSS"
                        + " grew %d MB while the committed heap grew %d MB%n",
                CASES.get(), RECORDS.get(), DEAD_LETTERS.get(), WARM_UP_CASES, rssGrowthMb, heapGrowthMb);
        assertThat(SessionStats.open()).as("sessions left open").isZero();
        assertThat(SessionStats.references()).as("session references left").isZero();
        // The heap grows with jqwik's generated samples; what grows beyond it is native. The per-restart
        // native growth bound is RestartLeakIT's (20 restarts).
        assertThat(rssGrowthMb - Math.max(0, heapGrowthMb))
                .as("RSS growth beyond the heap's, MB")
                .isLessThan(128);
        try (var paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    private static long rssKb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return 0;
    }

    /** A model and the records of one run of the operator on it. */
    static final class Case {
        final String model;
        final List<FuzzRecord> records;

        Case(String model, List<FuzzRecord> records) {
            this.model = model;
            this.records = records;
        }

        @Override
        public String toString() {
            return model + " " + records;
        }
    }

    @Provide
    Arbitrary<Case> cases() {
        return Arbitraries.of(models.keySet().stream().sorted().toArray(String[]::new))
                .flatMap(name -> {
                    FuzzModel m = models.get(name);
                    // payload, explicit shape (or null), and whether the record reuses the previous record's array
                    Arbitrary<Object[]> record = Combinators.combine(
                                    payload(m), shape(), Arbitraries.integers().between(0, 5))
                            .as((payload, shape, reuse) -> new Object[] {payload, shape, reuse == 0});
                    return record.list().ofMinSize(1).ofMaxSize(48).map(plan -> {
                        List<FuzzRecord> records = new ArrayList<>();
                        for (int i = 0; i < plan.size(); i++) {
                            boolean reuse = (Boolean) plan.get(i)[2] && i > 0;
                            Object payload = reuse ? records.get(i - 1).payload : plan.get(i)[0];
                            records.add(new FuzzRecord(i, payload, (long[]) plan.get(i)[1]));
                        }
                        return new Case(name, records);
                    });
                });
    }

    /** What a record carries: mostly valid values for the model, then every kind of wrong. */
    private static Arbitrary<Object> payload(FuzzModel m) {
        Arbitrary<Integer> validLength = Arbitraries.integers().between(1, 24).map(k -> k * m.valueMultiple);
        Arbitrary<Object> valid = m.floatInput
                ? validLength
                        .flatMap(n -> Arbitraries.floats()
                                .between(-4, 4)
                                .array(float[].class)
                                .ofSize(n))
                        .map(a -> (Object) a)
                : validLength
                        .flatMap(n -> Arbitraries.longs()
                                .between(-12, 12)
                                .array(long[].class)
                                .ofSize(n))
                        .map(a -> (Object) a);
        Arbitrary<Object> specialFloats = Arbitraries.of(
                        Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, Float.MAX_VALUE)
                .array(float[].class)
                .ofSize(m.valueMultiple)
                .map(a -> (Object) a);
        Arbitrary<Object> wrongLength =
                Arbitraries.of(0, 1, 3, 5, 7).map(n -> m.floatInput ? new float[n] : new long[n]);
        Arbitrary<Object> wrongType = Arbitraries.of(
                new double[m.valueMultiple],
                new int[m.valueMultiple],
                new String[] {"a"},
                "not an array",
                new boolean[1]);
        Arbitrary<Object> huge = Arbitraries.just(m.floatInput ? new float[300_000] : new long[150_000]);
        return Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(30, valid),
                net.jqwik.api.Tuple.of(2, specialFloats),
                net.jqwik.api.Tuple.of(2, wrongLength),
                net.jqwik.api.Tuple.of(2, wrongType),
                net.jqwik.api.Tuple.of(1, Arbitraries.just(null)),
                net.jqwik.api.Tuple.of(1, huge));
    }

    /** An explicit record shape, sometimes: zero, negative, huge and overflowing dims included. */
    private static Arbitrary<long[]> shape() {
        Arbitrary<long[]> dims = Arbitraries.of(-1L, 0L, 1L, 2L, 3L, 4L, 8L, 1L << 31, 0x6DB6DB6DB6DB6DB7L, 7L)
                .array(long[].class)
                .ofMinSize(1)
                .ofMaxSize(3);
        return Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(8, Arbitraries.just(null)), net.jqwik.api.Tuple.of(1, dims));
    }

    @Property
    void everyRecordIsScoredAsItIsAloneOrBecomesADeadLetter(
            @ForAll("cases") Case c, @ForAll("batchSize") int maxBatchSize) throws Exception {
        FuzzModel m = models.get(c.model);
        OnnxInferenceSpec<FuzzRecord, double[]> spec = spec(m);
        List<FuzzRecord> records = c.records;
        List<FuzzRecord> asSubmitted = new ArrayList<>();
        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(maxBatchSize)
                .maxBatchDelay(Duration.ofMillis(5))
                .build();
        List<double[]> scored;
        List<FailedRecord<FuzzRecord>> failed;
        try (OneInputStreamOperatorTestHarness<FuzzRecord, double[]> h = Harnesses.open(spec, policy, RECORD)) {
            for (int i = 0; i < records.size(); i++) {
                FuzzRecord r = records.get(i);
                asSubmitted.add(snapshot(r));
                h.processElement(r, i);
                // The next record refills this record's array, as an upstream operator with object reuse does.
                if (i + 1 < records.size() && records.get(i + 1).payload == r.payload) {
                    scramble(r.payload, i);
                }
                if (i % 7 == 6) {
                    h.setProcessingTime(h.getProcessingTime() + 5); // timer flushes: batches of any size
                }
            }
            h.endInput();
            scored = new ArrayList<>(h.extractOutputValues());
            failed = Harnesses.failed(h, RECORD);
        }
        // The alone-run of every record as it was submitted, on the map function's path (one record per run).
        List<Object> alone = new ArrayList<>();
        try (InferenceRunner<FuzzRecord, double[]> runner = Runners.open(spec)) {
            for (FuzzRecord r : asSubmitted) {
                try {
                    alone.add(runner.infer(r));
                } catch (Exception e) {
                    alone.add(e);
                }
            }
        }
        RECORDS.addAndGet(records.size());
        DEAD_LETTERS.addAndGet(failed.size());
        if (CASES.incrementAndGet() == WARM_UP_CASES) {
            rssBeforeKb = rssKb(); // after ORT's libraries, the sessions' first arenas and the JIT have settled
            heapBeforeMb = Runtime.getRuntime().totalMemory() >> 20;
        }

        assertThat(scored.size() + failed.size()).as("one outcome per record").isEqualTo(records.size());
        Map<Integer, String> reasons = new HashMap<>();
        for (FailedRecord<FuzzRecord> f : failed) {
            assertThat(f.reason).as("dead letter of %s has a reason", f.record).isNotBlank();
            assertThat(reasons.put(f.record.id, f.reason))
                    .as("one dead letter for %s", f.record)
                    .isNull();
        }
        int next = 0;
        for (int i = 0; i < records.size(); i++) {
            Object expected = alone.get(i);
            if (expected instanceof Exception) {
                assertThat(reasons)
                        .as("record %s fails alone (%s)", asSubmitted.get(i), expected)
                        .containsKey(i);
                continue;
            }
            assertThat(reasons).as("record %s scores alone", asSubmitted.get(i)).doesNotContainKey(i);
            assertSame(asSubmitted.get(i), (double[]) expected, scored.get(next++));
        }
    }

    @Provide
    Arbitrary<Integer> batchSize() {
        return Arbitraries.of(1, 2, 3, 8, 64);
    }

    private static void assertSame(FuzzRecord r, double[] alone, double[] batched) {
        assertThat(batched).as("record %s: batched output length", r).hasSameSizeAs(alone);
        for (int k = 0; k < alone.length; k++) {
            if (Double.isNaN(alone[k])) {
                assertThat(batched[k]).as("record %s output %s", r, k).isNaN();
            } else {
                double tolerance = 1e-5 + 1e-5 * Math.abs(alone[k]);
                assertThat(batched[k])
                        .as("record %s output %s", r, k)
                        .isCloseTo(alone[k], Assertions.within(tolerance));
            }
        }
    }

    private static OnnxInferenceSpec<FuzzRecord, double[]> spec(FuzzModel m) {
        String input = m.input;
        String output = m.output;
        return OnnxInference.<FuzzRecord>builder(m.path)
                .encoder((r, row) -> {
                    if (r.shape == null) {
                        row.put(input, r.payload);
                    } else {
                        row.put(input, r.payload, r.shape);
                    }
                })
                .decoder((r, out) -> withId(r.id, asDoubles(out.value(output))), DOUBLES)
                .maxRecordBytes(MAX_RECORD_BYTES)
                .maxConsecutiveFailedBatches(Integer.MAX_VALUE)
                .build();
    }

    /** The record's id first: a result decoded with another record's input shows. */
    private static double[] withId(int id, double[] values) {
        double[] d = new double[values.length + 1];
        d[0] = id;
        System.arraycopy(values, 0, d, 1, values.length);
        return d;
    }

    private static double[] asDoubles(Object values) {
        double[] d = new double[Array.getLength(values)];
        for (int i = 0; i < d.length; i++) {
            d[i] = ((Number) Array.get(values, i)).doubleValue();
        }
        return d;
    }

    /** The record as it is when submitted: a copy, so that later refills do not reach the alone-run. */
    private static FuzzRecord snapshot(FuzzRecord r) {
        Object p = r.payload;
        if (p != null && p.getClass().isArray()) {
            int n = Array.getLength(p);
            Object copy = Array.newInstance(p.getClass().getComponentType(), n);
            System.arraycopy(p, 0, copy, 0, n);
            p = copy;
        }
        return new FuzzRecord(r.id, p, r.shape);
    }

    private static void scramble(Object array, int i) {
        if (array instanceof float[]) {
            Arrays.fill((float[]) array, 0.5f * (i % 5));
        } else if (array instanceof long[]) {
            Arrays.fill((long[]) array, i % 5);
        }
    }
}
