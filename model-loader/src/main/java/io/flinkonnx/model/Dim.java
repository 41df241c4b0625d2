package io.flinkonnx.model;

import java.io.Serializable;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/** One dimension of a tensor shape: a fixed size, a named symbolic size, or unknown. */
@PublicEvolving
public final class Dim implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final Dim UNKNOWN = new Dim(-1, null);

    private final long value;
    private final String symbol;

    private Dim(long value, String symbol) {
        this.value = value;
        this.symbol = symbol;
    }

    /** A dimension of fixed size {@code value} (>= 0). */
    public static Dim fixed(long value) {
        if (value < 0) {
            throw new IllegalArgumentException("A fixed dimension must be >= 0, got " + value);
        }
        return new Dim(value, null);
    }

    /** A symbolic dimension such as {@code "batch"} or {@code "seq_len"}. */
    public static Dim symbolic(String name) {
        Objects.requireNonNull(name, "name");
        return name.isEmpty() ? UNKNOWN : new Dim(-1, name);
    }

    /** A dimension with neither a size nor a name. */
    public static Dim unknown() {
        return UNKNOWN;
    }

    public boolean isFixed() {
        return value >= 0;
    }

    public boolean isSymbolic() {
        return symbol != null;
    }

    /** The fixed size; -1 when the dimension is not fixed. */
    public long value() {
        return value;
    }

    /** The symbol, or {@code null}. */
    public String symbol() {
        return symbol;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Dim)) {
            return false;
        }
        Dim d = (Dim) o;
        return value == d.value && Objects.equals(symbol, d.symbol);
    }

    @Override
    public int hashCode() {
        return Objects.hash(value, symbol);
    }

    /** {@code 64}, {@code batch} or {@code ?}. */
    @Override
    public String toString() {
        return isFixed() ? Long.toString(value) : symbol != null ? symbol : "?";
    }
}
