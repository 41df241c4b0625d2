package io.flinkonnx.flink.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.flink.annotation.Internal;

/**
 * Where the rows of one batch keep their own copy of the values their encoder gave: per input, one
 * native-order direct buffer in which each buffered record's values are written, as they will be packed,
 * right after the previous record's. A batch whose records all have the same shape is then already packed:
 * the {@link TensorPacker} makes the run's tensor of a slice of this buffer instead of copying every record
 * again. Shared by the rows of one engine ({@link RecordInputs#batchRows}); used on the task thread only.
 *
 * <p>Lifetime: a record's segment stays valid until a row is detached as the first of a new batch (index
 * 0), which starts the buffers over. A record detached at a later index (one parked while the buffer ahead
 * of it runs) is appended and stays valid into the next batch.
 */
@Internal
public final class RowStaging {
    private final ByteBuffer[] buffers;
    private final int[] used;
    /** Per input: batches in a row that used less than a quarter of the buffer. */
    private final int[] smallBatches;
    /**
     * Per input: a larger buffer could not be allocated in this batch. The rest of the batch keeps heap copies
     * at once, rather than each record paying the JVM's GC-and-retry of a failed direct allocation.
     */
    private final boolean[] growFailed;

    public RowStaging(int inputs) {
        this.buffers = new ByteBuffer[inputs];
        this.used = new int[inputs];
        this.smallBatches = new int[inputs];
        this.growFailed = new boolean[inputs];
    }

    /**
     * Starts the buffers over for a new batch: every segment written so far is given up. Drops a buffer that
     * the last {@link TensorPacker#SHRINK_WINDOW} batches all used less than a quarter of (one outlier batch
     * must not keep its memory for the operator's life).
     */
    void startBatch() {
        for (int i = 0; i < buffers.length; i++) {
            ByteBuffer b = buffers[i];
            if (b != null) {
                smallBatches[i] = 4L * used[i] < b.capacity() ? smallBatches[i] + 1 : 0;
                if (smallBatches[i] >= TensorPacker.SHRINK_WINDOW && b.capacity() > TensorPacker.SHRINK_FLOOR_BYTES) {
                    buffers[i] = null;
                    smallBatches[i] = 0;
                }
            }
            used[i] = 0;
            growFailed[i] = false;
        }
    }

    /**
     * Writes {@code values} after the last segment of input {@code input}; returns where it starts, or -1
     * when it does not fit in one buffer (more than 2 GiB, or no direct memory left for a larger one): the
     * caller then keeps a heap copy instead.
     */
    int append(int input, ElementCodec codec, Object values, int count) {
        long bytes = (long) count * codec.byteSize();
        long end = used[input] + bytes;
        if (end > Integer.MAX_VALUE) {
            return -1;
        }
        ByteBuffer b = buffers[input];
        if (b == null || b.capacity() < end) {
            if (growFailed[input]) {
                return -1;
            }
            int capacity = (int) Math.min(Integer.MAX_VALUE, Math.max(end, b == null ? 256 : 2L * b.capacity()));
            ByteBuffer grown;
            try {
                grown = ByteBuffer.allocateDirect(capacity).order(ByteOrder.nativeOrder());
            } catch (OutOfMemoryError doubled) {
                try {
                    grown = ByteBuffer.allocateDirect((int) end).order(ByteOrder.nativeOrder()); // just enough
                } catch (OutOfMemoryError e) {
                    growFailed[input] = true;
                    return -1;
                }
            }
            if (b != null && used[input] > 0) {
                grown.put(b.duplicate().position(0).limit(used[input]));
            }
            buffers[input] = grown;
            b = grown;
        }
        int start = used[input];
        b.position(start);
        codec.put(b, values);
        used[input] = (int) end;
        return start;
    }

    /**
     * Bytes {@code [start, start + length)} of input {@code input}, as a native-order buffer whose position is
     * at its end (what {@link ElementCodec#tensor} and a bulk {@code put} after a {@code flip} expect). Backed
     * by the staging buffer: valid until the next {@link #append} or {@link #startBatch}.
     */
    ByteBuffer segment(int input, int start, int length) {
        ByteBuffer s = buffers[input]
                .duplicate()
                .position(start)
                .limit(start + length)
                .slice()
                .order(ByteOrder.nativeOrder());
        return s.position(length);
    }

    /** Direct bytes held. */
    public long retainedBytes() {
        long bytes = 0;
        for (ByteBuffer b : buffers) {
            bytes += b == null ? 0 : b.capacity();
        }
        return bytes;
    }
}
