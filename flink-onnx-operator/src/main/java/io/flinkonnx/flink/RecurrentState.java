package io.flinkonnx.flink;

import java.io.Serializable;
import java.lang.reflect.Array;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * The recurrent state of a model scored per key by {@link OnnxInference#stateful}: which model inputs take
 * the previous state and which outputs give the next one, their initial values, constant inputs, and when
 * a key's state ends. Immutable and serializable; built by {@link #builder()}, checked as it is built (and
 * against the model when the job starts).
 *
 * <pre>{@code
 * RecurrentState<Chunk> state = RecurrentState.<Chunk>builder()
 *         .state("h", "hn")               // input h takes the key's state, output hn is the next one
 *         .state("c", "cn", 1)            // batch axis given: c is [layers, batch, hidden]
 *         .constant("sr", 16000L)         // an INT64 scalar fed to every run
 *         .ttl(Duration.ofMinutes(30))    // a key idle for 30 minutes starts again from the initial state
 *         .resetWhen(Chunk::endOfCall)    // after this record the key starts again from the initial state
 *         .build();
 * }</pre>
 *
 * <p><b>Batch axis of a state.</b> Records of different keys share one run; their states are stacked
 * along the state's batch axis. {@link Builder#state(String, String)} derives it: the dim of the state
 * input named by the same symbol as the records' batch dim (e.g. {@code batch} in {@code x: [batch, 3]}
 * and {@code h: [1, batch, 4]}); without such a symbol give it, {@link Builder#state(String, String,
 * int)}. The output takes the input's axis. A state's value per key is its shape without that axis.
 *
 * @param <IN> the record type
 */
@PublicEvolving
public final class RecurrentState<IN> implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The batch axis of a state whose axis is derived from the model's dim names. */
    public static final int DERIVED_AXIS = -1;

    /** Whether a record ends its key's sequence (end of call, end of session). */
    @FunctionalInterface
    @PublicEvolving
    public interface ResetPredicate<IN> extends Serializable {
        boolean test(IN record) throws Exception;
    }

    /** One state pair: input {@code input} takes the key's state, output {@code output} gives the next. */
    @PublicEvolving
    public static final class Pair implements Serializable {
        private static final long serialVersionUID = 1L;
        private final String input;
        private final String output;
        private final int batchAxis;
        private final Object initial;

        Pair(String input, String output, int batchAxis, Object initial) {
            this.input = input;
            this.output = output;
            this.batchAxis = batchAxis;
            this.initial = initial;
        }

        public String input() {
            return input;
        }

        public String output() {
            return output;
        }

        /** The batch axis given, or {@link #DERIVED_AXIS}. */
        public int batchAxis() {
            return batchAxis;
        }

        /** The initial value (a primitive array of the state's per-key shape), or null for zeros. */
        public Object initial() {
            return initial == null ? null : copy(initial);
        }

        @Override
        public String toString() {
            return input + " -> " + output + (batchAxis == DERIVED_AXIS ? "" : " (batch axis " + batchAxis + ")");
        }
    }

    /** A constant input: the same value, without batch axis, in every run. */
    @PublicEvolving
    public static final class Constant implements Serializable {
        private static final long serialVersionUID = 1L;
        private final String input;
        private final Object values;
        private final long[] shape;

        Constant(String input, Object values, long[] shape) {
            this.input = input;
            this.values = values;
            this.shape = shape;
        }

        public String input() {
            return input;
        }

        /** A copy of the values, flat. */
        public Object values() {
            return copy(values);
        }

        /** The tensor's shape ({@code []} for a scalar). */
        public long[] shape() {
            return shape.clone();
        }
    }

    private final List<Pair> pairs;
    private final List<Constant> constants;
    private final Duration ttl;
    private final ResetPredicate<IN> resetWhen;

    private RecurrentState(Builder<IN> b) {
        List<Pair> p = new ArrayList<>();
        for (Pair pair : b.pairs) {
            p.add(new Pair(pair.input, pair.output, pair.batchAxis, b.initials.get(pair.input)));
        }
        this.pairs = Collections.unmodifiableList(p);
        this.constants = Collections.unmodifiableList(new ArrayList<>(b.constants.values()));
        this.ttl = b.ttl;
        this.resetWhen = b.resetWhen;
    }

    /** Starts a declaration; at least one {@link Builder#state} is needed. */
    public static <IN> Builder<IN> builder() {
        return new Builder<>();
    }

    public List<Pair> pairs() {
        return pairs;
    }

    public List<Constant> constants() {
        return constants;
    }

    /** How long an idle key keeps its state, or null: kept until reset. */
    public Duration ttl() {
        return ttl;
    }

    /** The reset predicate, or null. */
    public ResetPredicate<IN> resetWhen() {
        return resetWhen;
    }

    /** Whether {@code input} is a state input or a constant (the operator supplies it, not the record). */
    public boolean supplies(String input) {
        return pairs.stream().anyMatch(p -> p.input.equals(input))
                || constants.stream().anyMatch(c -> c.input.equals(input));
    }

    @Override
    public String toString() {
        return "RecurrentState{states=" + pairs + ", constants="
                + constants.stream().map(c -> c.input).toList() + (ttl == null ? "" : ", ttl=" + ttl)
                + (resetWhen == null ? "" : ", resetWhen") + "}";
    }

    private static Object copy(Object array) {
        int n = Array.getLength(array);
        Object c = Array.newInstance(array.getClass().getComponentType(), n);
        System.arraycopy(array, 0, c, 0, n);
        return c;
    }

    /** Builder of {@link RecurrentState}; every call checks its arguments at once. */
    @PublicEvolving
    public static final class Builder<IN> {
        private static final List<Class<?>> ARRAY_TYPES = List.of(
                float[].class,
                double[].class,
                long[].class,
                int[].class,
                short[].class,
                byte[].class,
                boolean[].class,
                String[].class);

        private final List<Pair> pairs = new ArrayList<>();
        private final Map<String, Object> initials = new LinkedHashMap<>();
        private final Map<String, Constant> constants = new LinkedHashMap<>();
        private Duration ttl;
        private ResetPredicate<IN> resetWhen;

        private Builder() {}

        /** A state pair whose batch axis is derived from the model's dim names (see the class comment). */
        public Builder<IN> state(String input, String output) {
            return addPair(input, output, DERIVED_AXIS);
        }

        /** A state pair with its batch axis given: 1 for {@code [layers, batch, hidden]}. */
        public Builder<IN> state(String input, String output, int batchAxis) {
            if (batchAxis < 0) {
                throw new IllegalArgumentException("The batch axis of state '" + input + "' must be >= 0 (1 for"
                        + " [layers, batch, hidden]), got " + batchAxis + "; state(input, output) derives it");
            }
            return addPair(input, output, batchAxis);
        }

        private Builder<IN> addPair(String input, String output, int axis) {
            checkName(input, "state input");
            checkName(output, "state output");
            checkUnused(input);
            for (Pair p : pairs) {
                if (p.output.equals(output)) {
                    throw new IllegalArgumentException("Output '" + output + "' already gives state '" + p.input
                            + "'; each state output pairs with one input");
                }
            }
            pairs.add(new Pair(input, output, axis, null));
            return this;
        }

        /**
         * The initial value of state {@code input} (declared before), flat, in the state's per-key shape
         * (its shape without the batch axis), of the input's element type ({@code float[]} for FLOAT).
         * Default: zeros. Checked against the model when the job starts.
         */
        public Builder<IN> initial(String input, Object values) {
            if (pairs.stream().noneMatch(p -> p.input.equals(input))) {
                throw new IllegalArgumentException(
                        "initial(\"" + input + "\", ...) names no declared state; declared: " + statesNamed());
            }
            checkArray(values, "initial value of '" + input + "'");
            initials.put(input, copy(values));
            return this;
        }

        /** An INT64 scalar constant input (a sample rate, a step count). */
        public Builder<IN> constant(String input, long value) {
            return constant(input, new long[] {value});
        }

        /** A FLOAT scalar constant input. */
        public Builder<IN> constant(String input, float value) {
            return constant(input, new float[] {value});
        }

        /** A DOUBLE scalar constant input. */
        public Builder<IN> constant(String input, double value) {
            return constant(input, new double[] {value});
        }

        /** An INT32 scalar constant input. */
        public Builder<IN> constant(String input, int value) {
            return constant(input, new int[] {value});
        }

        /**
         * A constant input of any shape: {@code values} flat (a primitive array or {@code String[]}),
         * {@code shape} empty for a scalar. It has no batch axis: one value feeds every run.
         */
        public Builder<IN> constant(String input, Object values, long... shape) {
            checkName(input, "constant input");
            checkUnused(input);
            checkArray(values, "constant '" + input + "'");
            Objects.requireNonNull(shape, "shape");
            long product = 1;
            for (long d : shape) {
                if (d < 0) {
                    throw new IllegalArgumentException(
                            "Constant '" + input + "' has a negative dim in shape " + Arrays.toString(shape));
                }
                product *= d;
            }
            if (product != Array.getLength(values)) {
                throw new IllegalArgumentException("Constant '" + input + "' has shape " + Arrays.toString(shape) + " ("
                        + product + " values) but " + Array.getLength(values) + " values were given");
            }
            constants.put(input, new Constant(input, copy(values), shape.clone()));
            return this;
        }

        /**
         * How long a key keeps its state without a record (processing time, > 0): an idle key starts again
         * from the initial state. Default: kept until reset.
         */
        public Builder<IN> ttl(Duration ttl) {
            Objects.requireNonNull(ttl, "ttl");
            if (ttl.isZero() || ttl.isNegative() || ttl.toMillis() < 1) {
                throw new IllegalArgumentException("ttl must be at least 1 ms, got " + ttl);
            }
            this.ttl = ttl;
            return this;
        }

        /**
         * Ends a key's sequence: a record for which {@code predicate} holds is scored with its key's state,
         * then the state is cleared, so the key's next record starts from the initial state.
         */
        public Builder<IN> resetWhen(ResetPredicate<IN> predicate) {
            this.resetWhen = Objects.requireNonNull(predicate, "resetWhen");
            return this;
        }

        public RecurrentState<IN> build() {
            if (pairs.isEmpty()) {
                throw new IllegalStateException("No state declared: call state(\"h\", \"hn\") for each state"
                        + " input/output pair (a model without state scores with OnnxInference.batched)");
            }
            return new RecurrentState<>(this);
        }

        private String statesNamed() {
            return pairs.stream().map(p -> p.input).toList().toString();
        }

        private void checkUnused(String input) {
            if (pairs.stream().anyMatch(p -> p.input.equals(input)) || constants.containsKey(input)) {
                throw new IllegalArgumentException(
                        "Input '" + input + "' is declared twice; each input is a state or a constant, once");
            }
        }

        private static void checkName(String name, String what) {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException(
                        "The " + what + " name must be a model's input/output name, got '" + name + "'");
            }
        }

        private static void checkArray(Object values, String what) {
            if (values == null || !ARRAY_TYPES.contains(values.getClass())) {
                throw new IllegalArgumentException("The " + what + " must be a primitive array (float[], double[],"
                        + " long[], int[], short[], byte[], boolean[]) or String[], got "
                        + (values == null ? "null" : values.getClass().getSimpleName()));
            }
            if (values instanceof String[] && Arrays.asList((String[]) values).contains(null)) {
                throw new IllegalArgumentException("The " + what + " holds a null string");
            }
        }
    }
}
