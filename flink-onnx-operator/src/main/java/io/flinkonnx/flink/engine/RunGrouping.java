package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.tensor.RecordInputs;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Which records of a batch may share one ORT run, and the order they run in. Records may differ only along
 * dims the model is told about (a symbol the attention mask carries) or the policy lets be padded, and with
 * length buckets on only within one bucket; anywhere else padding would change the prediction, so such
 * records run in separate groups of equal shape. It owns the grouping rule and the order arrays (each run
 * position's index in the batch, the records in run order), sized once at open: nothing is allocated per
 * batch.
 */
final class RunGrouping {
    /** Per input, per record dim: whether records that differ there may share a run (padded). */
    private final boolean[][] paddable;

    private final boolean bucketByLength;
    /** Every input's record dims are fixed: all records of a batch have the same shapes. */
    private final boolean fixedRecordShapes;
    /** Per run position: the index in the batch of the record whose row is there. */
    private final int[] order;
    /** The records in run order, while a regrouped batch is scored. */
    private final Object[] ordered;

    private boolean grouped;

    RunGrouping(List<TensorSpec> inputs, int maskInput, BatchPolicy policy, int maxRows) {
        this.paddable = paddableDims(inputs, maskInput, policy.padWithoutMask());
        this.bucketByLength = policy.bucketByLength();
        this.fixedRecordShapes =
                inputs.stream().allMatch(in -> in.recordDims().stream().allMatch(Dim::isFixed));
        this.order = new int[maxRows];
        this.ordered = new Object[maxRows];
    }

    /**
     * Puts rows {@code [0, count)} that may share a run next to each other (stable: groups in order of their
     * first record, records in input order within a group) and returns {@code records} in the same order (the
     * decoder and the drift checks must see the record whose row they read): {@code records} itself when all
     * may share one run (the common case), else an array valid until {@link #release}.
     */
    Object[] group(RecordInputs[] rows, Object[] records, int count) {
        for (int i = 0; i < count; i++) {
            order[i] = i;
        }
        // Records of a model whose inputs all have fixed record dims always share a run (encode checked the dims).
        grouped = !fixedRecordShapes && groupByRun(rows, count);
        if (!grouped) {
            return records;
        }
        for (int p = 0; p < count; p++) {
            ordered[p] = records[order[p]];
        }
        return ordered;
    }

    /** The end (exclusive) of the run that starts at row {@code from} of a grouped batch of {@code count}. */
    int runEnd(RecordInputs[] rows, int from, int count) {
        int to = from + 1;
        while (to < count && (!grouped || shareRun(rows[from], rows[to]))) {
            to++;
        }
        return to;
    }

    /** The index in the batch of the record at run position {@code position}. */
    int batchIndex(int position) {
        return order[position];
    }

    /** Drops the references to the records of the batch of {@code count} just scored. */
    void release(int count) {
        if (grouped) {
            Arrays.fill(ordered, 0, count, null);
            grouped = false;
        }
    }

    /**
     * Groups rows by run, tracking each row's original index in {@link #order}. Returns false, touching
     * nothing, when all rows may share one run.
     */
    private boolean groupByRun(RecordInputs[] rows, int count) {
        int first = 1;
        while (first < count && shareRun(rows[0], rows[first])) {
            first++;
        }
        if (first >= count) {
            return false;
        }
        // Insertion by group: each row moves back to just after the last row of its group seen so far.
        for (int r = first; r < count; r++) {
            int end = groupEnd(rows, r);
            RecordInputs row = rows[r];
            int index = order[r];
            for (int k = r; k > end; k--) {
                rows[k] = rows[k - 1];
                order[k] = order[k - 1];
            }
            rows[end] = row;
            order[end] = index;
        }
        return true;
    }

    /** Where row {@code r} goes among the already placed rows {@code [0, r)}: after its group, or at the end. */
    private int groupEnd(RecordInputs[] rows, int r) {
        int end = -1;
        for (int k = 0; k < r; k++) {
            if (shareRun(rows[k], rows[r])) {
                end = k + 1;
            }
        }
        return end < 0 ? r : end;
    }

    /**
     * Which record dims may differ within one run, padded to the longest: dims named by a symbol the
     * attention-mask input also carries (the model is told where the padding is), or every free dim when
     * the policy opts in (numeric inputs only). Anywhere else padding would change the prediction (an LSTM, mean pooling), so
     * records that differ there are run in separate groups of equal shape.
     */
    private static boolean[][] paddableDims(List<TensorSpec> inputs, int maskInput, boolean padWithoutMask) {
        Set<String> masked = new HashSet<>();
        if (maskInput >= 0) {
            for (Dim d : inputs.get(maskInput).recordDims()) {
                if (d.isSymbolic()) {
                    masked.add(d.symbol());
                }
            }
        }
        boolean[][] paddable = new boolean[inputs.size()][];
        for (int i = 0; i < inputs.size(); i++) {
            List<Dim> dims = inputs.get(i).recordDims();
            paddable[i] = new boolean[dims.size()];
            for (int d = 0; d < dims.size(); d++) {
                Dim dim = dims.get(d);
                // STRING inputs pad with "" only under the mask: "" is text to a string op (a token, a length of
                // 0), never a neutral value, so padWithoutMask does not reach them.
                boolean withoutMask = padWithoutMask && inputs.get(i).elementType() != ElementType.STRING;
                paddable[i][d] = !dim.isFixed() && (withoutMask || (dim.isSymbolic() && masked.contains(dim.symbol())));
            }
        }
        return paddable;
    }

    /** Whether two encoded records may share one run: equal shapes except along paddable dims. */
    private boolean shareRun(RecordInputs a, RecordInputs b) {
        for (int i = 0; i < paddable.length; i++) {
            long[] sa = a.shape(i);
            long[] sb = b.shape(i);
            if (sa.length != sb.length) {
                return false;
            }
            for (int d = 0; d < sa.length; d++) {
                if (sa[d] != sb[d]
                        && (d >= paddable[i].length
                                || !paddable[i][d]
                                || (bucketByLength && lengthBucket(sa[d]) != lengthBucket(sb[d])))) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * The length range of a padded length, in steps of about 1.41x (half powers of two): 1..8 share one, then
     * 9..11, 12..16, 17..23, 24..32, 33..45, ... A record is padded by less than 41 % of its length.
     */
    static int lengthBucket(long length) {
        if (length <= 8) {
            return 0;
        }
        int octave = 63 - Long.numberOfLeadingZeros(length - 1); // 2^octave < length <= 2^(octave+1)
        long half = Math.round(Math.sqrt(2) * (1L << octave)); // the half-power boundary in that octave
        return 2 * octave + (length > half ? 1 : 0);
    }
}
