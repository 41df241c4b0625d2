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
        /**
         * Whether {@code record} is the last of its key's sequence.
         *
         * @param record the record, scored with its key's state before the state is cleared
         * @return true to clear the key's state after this record
         * @throws Exception to fail the task
         */
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

        /**
         * The model input that takes the key's state.
         *
         * @return the state input's name
         */
        public String input() {
            return input;
        }

        /**
         * The model output that gives the key's next state.
         *
         * @return the state output's name
         */
        public String output() {
            return output;
        }

        /**
         * The batch axis given, or {@link #DERIVED_AXIS}.
         *
         * @return the state's batch axis, >= 0, or {@link #DERIVED_AXIS} when derived from the model
         */
        public int batchAxis() {
            return batchAxis;
        }

        /**
         * The initial value (a primitive array of the state's per-key shape), or null for zeros.
         *
         * @return a copy of the initial value, flat, or null for zeros
         */
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

        /**
         * The model input that takes the constant.
         *
         * @return the constant input's name
         */
        public String input() {
            return input;
        }

        /**
         * A copy of the values, flat.
         *
         * @return a copy of the values (a primitive array or {@code String[]})
         */
        public Object values() {
            return copy(values);
        }

        /**
         * The tensor's shape ({@code []} for a scalar).
         *
         * @return a copy of the shape
         */
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

    /**
     * Starts a declaration; at least one {@link Builder#state} is needed (example in the class comment).
     *
     * @param <IN> the record type
     * @return a new builder
     */
    public static <IN> Builder<IN> builder() {
        return new Builder<>();
    }

    /**
     * The state pairs, in the order declared.
     *
     * @return the state pairs, unmodifiable, at least one
     */
    public List<Pair> pairs() {
        return pairs;
    }

    /**
     * The constant inputs, in the order declared.
     *
     * @return the constants, unmodifiable, possibly empty
     */
    public List<Constant> constants() {
        return constants;
    }

    /**
     * How long an idle key keeps its state, or null: kept until reset.
     *
     * @return the state's time to live (at least 1 ms), or null
     */
    public Duration ttl() {
        return ttl;
    }

    /**
     * The reset predicate, or null.
     *
     * @return the predicate that ends a key's sequence, or null for none
     */
    public ResetPredicate<IN> resetWhen() {
        return resetWhen;
    }

    /**
     * Whether {@code input} is a state input or a constant (the operator supplies it, not the record).
     *
     * @param input a model input's name
     * @return true when {@code input} is declared here as a state input or a constant
     */
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

        /**
         * A state pair whose batch axis is derived from the model's dim names (see the class comment).
         *
         * @param input the model input that takes the key's state, not blank, not declared before
         * @param output the model output that gives the next state, not blank, paired with no other input
         * @return this builder
         * @throws IllegalArgumentException when a name is null or blank, {@code input} is already declared, or
         *     {@code output} already gives another state
         */
        public Builder<IN> state(String input, String output) {
            return addPair(input, output, DERIVED_AXIS);
        }

        /**
         * A state pair with its batch axis given: 1 for {@code [layers, batch, hidden]}.
         *
         * @param input the model input that takes the key's state, not blank, not declared before
         * @param output the model output that gives the next state, not blank, paired with no other input
         * @param batchAxis the state's batch axis, >= 0
         * @return this builder
         * @throws IllegalArgumentException when {@code batchAxis} is negative, a name is null or blank,
         *     {@code input} is already declared, or {@code output} already gives another state
         */
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
         *
         * @param input a state input declared before with {@link #state}
         * @param values the initial value, flat: a primitive array or {@code String[]} without nulls (copied)
         * @return this builder
         * @throws IllegalArgumentException when {@code input} is not a declared state, or {@code values} is null,
         *     not such an array, or a {@code String[]} holding null
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

        /**
         * An INT64 scalar constant input (a sample rate, a step count).
         *
         * @param input the model input, not blank, not declared before
         * @param value the value fed to every run
         * @return this builder
         * @throws IllegalArgumentException when {@code input} is null or blank, or already declared as a state or
         *     a constant
         */
        public Builder<IN> constant(String input, long value) {
            return constant(input, new long[] {value});
        }

        /**
         * A FLOAT scalar constant input.
         *
         * @param input the model input, not blank, not declared before
         * @param value the value fed to every run
         * @return this builder
         * @throws IllegalArgumentException when {@code input} is null or blank, or already declared as a state or
         *     a constant
         */
        public Builder<IN> constant(String input, float value) {
            return constant(input, new float[] {value});
        }

        /**
         * A DOUBLE scalar constant input.
         *
         * @param input the model input, not blank, not declared before
         * @param value the value fed to every run
         * @return this builder
         * @throws IllegalArgumentException when {@code input} is null or blank, or already declared as a state or
         *     a constant
         */
        public Builder<IN> constant(String input, double value) {
            return constant(input, new double[] {value});
        }

        /**
         * An INT32 scalar constant input.
         *
         * @param input the model input, not blank, not declared before
         * @param value the value fed to every run
         * @return this builder
         * @throws IllegalArgumentException when {@code input} is null or blank, or already declared as a state or
         *     a constant
         */
        public Builder<IN> constant(String input, int value) {
            return constant(input, new int[] {value});
        }

        /**
         * A constant input of any shape: {@code values} flat (a primitive array or {@code String[]}),
         * {@code shape} empty for a scalar. It has no batch axis: one value feeds every run.
         *
         * @param input the model input, not blank, not declared before
         * @param values the values, flat: a primitive array or {@code String[]} without nulls (copied)
         * @param shape the tensor's dims, each >= 0, their product the number of values; empty for a scalar
         * @return this builder
         * @throws IllegalArgumentException when {@code input} is null, blank or already declared; {@code values}
         *     is null, not such an array, or a {@code String[]} holding null; a dim is negative; or the number of
         *     values is not the product of the dims
         * @throws NullPointerException when {@code shape} is null
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
         *
         * @param ttl how long an idle key keeps its state, at least 1 ms
         * @return this builder
         * @throws IllegalArgumentException when {@code ttl} is shorter than 1 ms (zero or negative included)
         * @throws NullPointerException when {@code ttl} is null
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
         *
         * @param predicate whether a record is the last of its key's sequence, not null
         * @return this builder
         * @throws NullPointerException when {@code predicate} is null
         */
        public Builder<IN> resetWhen(ResetPredicate<IN> predicate) {
            this.resetWhen = Objects.requireNonNull(predicate, "resetWhen");
            return this;
        }

        /**
         * Builds the declaration; it is checked against the model when the job starts.
         *
         * @return the immutable declaration
         * @throws IllegalStateException when no state pair was declared
         */
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
