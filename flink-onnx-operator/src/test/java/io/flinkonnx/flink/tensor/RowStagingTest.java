package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Rows detached into their batch's staging are packed there already: a run of one shape becomes a tensor
 * of the staging itself, with exactly the bytes the copying path packs; anything else (padding, rows out
 * of order) is copied from the staging; a detached row never sees what its source does afterwards.
 */
class RowStagingTest {
    private static final List<TensorSpec> SPECS = List.of(
            TensorSpec.tensor("x", ElementType.FLOAT, List.of(Dim.symbolic("batch"), Dim.fixed(3))),
            TensorSpec.tensor("ids", ElementType.INT64, List.of(Dim.symbolic("batch"), Dim.symbolic("seq"))));

    private static float[] x(int k) {
        return new float[] {k, k + 0.5f, -k};
    }

    private static long[] ids(int k, int length) {
        long[] ids = new long[length];
        for (int i = 0; i < length; i++) {
            ids[i] = 100L * k + i;
        }
        return ids;
    }

    /** The bytes of each input's tensor for rows [offset, offset+count), packed by a fresh packer. */
    private static List<byte[]> packed(TensorPacker packer, RecordInputs[] rows, int offset, int count)
            throws OrtException {
        Map<String, OnnxTensor> tensors = packer.pack(rows, offset, count);
        try {
            List<byte[]> bytes = new ArrayList<>();
            for (OnnxTensor t : tensors.values()) {
                ByteBuffer b = t.getByteBuffer();
                byte[] a = new byte[b.remaining()];
                b.get(a);
                bytes.add(a);
            }
            return bytes;
        } finally {
            tensors.values().forEach(OnnxTensor::close);
        }
    }

    private static TensorPacker packer() {
        return new TensorPacker(OrtRuntime.env(), SPECS, 0, -1);
    }

    /** The same records in rows of their own (heap copies), as the reference packing. */
    private static RecordInputs[] heapRows(int[] keys, int[] lengths) {
        RecordInputs[] rows = new RecordInputs[keys.length];
        for (int r = 0; r < keys.length; r++) {
            rows[r] = new RecordInputs("m", SPECS);
            rows[r].put("x", x(keys[r])).put("ids", ids(keys[r], lengths[r]));
            rows[r].detach();
        }
        return rows;
    }

    @Test
    void aBatchOfOneShapeIsPackedWithoutACopyAndHoldsTheSameBytes() throws Exception {
        RecordInputs[] rows = RecordInputs.batchRows("m", SPECS, 9);
        for (int r = 0; r < 8; r++) {
            rows[r].reset();
            rows[r].put("x", x(r)).put("ids", ids(r, 5));
            rows[r].detach(r);
        }
        TensorPacker staged = packer();
        List<byte[]> bytes = packed(staged, rows, 0, 8);
        assertThat(staged.retainedBytes()).as("no pack buffer was needed").isZero();

        int[] keys = {0, 1, 2, 3, 4, 5, 6, 7};
        List<byte[]> reference = packed(packer(), heapRows(keys, new int[] {5, 5, 5, 5, 5, 5, 5, 5}), 0, 8);
        assertThat(bytes).hasSize(2);
        for (int i = 0; i < 2; i++) {
            assertThat(bytes.get(i)).as("input %s", i).isEqualTo(reference.get(i));
        }
        // Any sub-range (failure isolation halves a batch) is a slice too.
        List<byte[]> middle = packed(staged, rows, 2, 3);
        List<byte[]> middleReference = packed(packer(), heapRows(new int[] {2, 3, 4}, new int[] {5, 5, 5}), 0, 3);
        assertThat(middle.get(0)).isEqualTo(middleReference.get(0));
        assertThat(middle.get(1)).isEqualTo(middleReference.get(1));
        assertThat(staged.retainedBytes()).isZero();
    }

    @Test
    void aDetachedRowKeepsItsValuesWhenTheEncodersScratchArrayIsRefilled() throws Exception {
        RecordInputs[] rows = RecordInputs.batchRows("m", SPECS, 5);
        float[] scratch = new float[3];
        long[] scratchIds = new long[4];
        for (int r = 0; r < 4; r++) {
            System.arraycopy(x(r), 0, scratch, 0, 3);
            System.arraycopy(ids(r, 4), 0, scratchIds, 0, 4);
            rows[r].reset();
            rows[r].put("x", scratch).put("ids", scratchIds);
            rows[r].detach(r);
        }
        java.util.Arrays.fill(scratch, Float.NaN);
        java.util.Arrays.fill(scratchIds, -1);
        for (int r = 0; r < 4; r++) {
            assertThat((float[]) rows[r].values(0)).containsExactly(x(r));
            assertThat((long[]) rows[r].values(1)).containsExactly(ids(r, 4));
        }
        List<byte[]> reference = packed(packer(), heapRows(new int[] {0, 1, 2, 3}, new int[] {4, 4, 4, 4}), 0, 4);
        List<byte[]> bytes = packed(packer(), rows, 0, 4);
        assertThat(bytes.get(0)).isEqualTo(reference.get(0));
        assertThat(bytes.get(1)).isEqualTo(reference.get(1));
    }

    @Test
    void aRowParkedWhileTheBatchAheadRunsStaysValidAsTheFirstRowOfTheNext() throws Exception {
        RecordInputs[] rows = RecordInputs.batchRows("m", SPECS, 4);
        for (int r = 0; r < 3; r++) {
            rows[r].reset();
            rows[r].put("x", x(r)).put("ids", ids(r, 2));
            rows[r].detach(r);
        }
        // Row 3 is encoded, then the operator finds the buffer too full: it parks row 3 and runs rows 0..2.
        rows[3].reset();
        rows[3].put("x", x(3)).put("ids", ids(3, 2));
        rows[3].detach(3);
        TensorPacker packer = packer();
        List<byte[]> first = packed(packer, rows, 0, 3);
        assertThat(first.get(0))
                .isEqualTo(packed(packer(), heapRows(new int[] {0, 1, 2}, new int[] {2, 2, 2}), 0, 3)
                        .get(0));
        RecordInputs parked = rows[3];
        rows[3] = rows[0];
        rows[0] = parked; // the parked row becomes row 0 of the next batch, without a new detach
        for (int r = 1; r < 3; r++) {
            rows[r].reset();
            rows[r].put("x", x(10 + r)).put("ids", ids(10 + r, 2));
            rows[r].detach(r);
        }
        List<byte[]> second = packed(packer, rows, 0, 3);
        List<byte[]> reference = packed(packer(), heapRows(new int[] {3, 11, 12}, new int[] {2, 2, 2}), 0, 3);
        assertThat(second.get(0)).isEqualTo(reference.get(0));
        assertThat(second.get(1)).isEqualTo(reference.get(1));
        assertThat(packer.retainedBytes()).isZero();
    }

    @Test
    void raggedOrReorderedRowsAreCopiedFromTheStagingAndPadded() throws Exception {
        RecordInputs[] rows = RecordInputs.batchRows("m", SPECS, 5);
        int[] lengths = {3, 1, 4, 2};
        for (int r = 0; r < 4; r++) {
            rows[r].reset();
            rows[r].put("x", x(r)).put("ids", ids(r, lengths[r]));
            rows[r].detach(r);
        }
        TensorPacker packer = packer();
        List<byte[]> ragged = packed(packer, rows, 0, 4);
        TensorPacker referencePacker = packer();
        List<byte[]> reference = packed(referencePacker, heapRows(new int[] {0, 1, 2, 3}, lengths), 0, 4);
        assertThat(ragged.get(0)).isEqualTo(reference.get(0));
        assertThat(ragged.get(1)).isEqualTo(reference.get(1));
        assertThat(packer.paddedLengths()).containsOnlyKeys("seq");
        assertThat(packer.paddedLengths().get("seq")).containsExactly(3, 1, 4, 2);

        RecordInputs[] reordered = {rows[2], rows[0], rows[3]};
        List<byte[]> out = packed(packer(), reordered, 0, 3);
        List<byte[]> outReference = packed(packer(), heapRows(new int[] {2, 0, 3}, new int[] {4, 3, 2}), 0, 3);
        assertThat(out.get(0)).isEqualTo(outReference.get(0));
        assertThat(out.get(1)).isEqualTo(outReference.get(1));
    }

    @Test
    void growingTheStagingKeepsTheRowsAlreadyInIt() throws Exception {
        int n = 200; // 200 x (12 + 8 x 6) bytes: the staging grows from 256 bytes several times
        RecordInputs[] rows = RecordInputs.batchRows("m", SPECS, n);
        int[] keys = new int[n];
        int[] lengths = new int[n];
        for (int r = 0; r < n; r++) {
            keys[r] = r;
            lengths[r] = 6;
            rows[r].reset();
            rows[r].put("x", x(r)).put("ids", ids(r, 6));
            rows[r].detach(r);
        }
        List<byte[]> bytes = packed(packer(), rows, 0, n);
        List<byte[]> reference = packed(packer(), heapRows(keys, lengths), 0, n);
        assertThat(bytes.get(0)).isEqualTo(reference.get(0));
        assertThat(bytes.get(1)).isEqualTo(reference.get(1));
    }

    @Test
    void everyBufferedElementTypeReadsBackAndPacksAsTheCopyingPathDoes() throws Exception {
        Object[] values = {
            new float[] {1.5f, -2f},
            new double[] {1.5, -2},
            new long[] {Long.MAX_VALUE, -2},
            new int[] {7, -2},
            new short[] {3, -2},
            new byte[] {3, -2},
            new byte[] {3, (byte) 200},
            new boolean[] {true, false},
            new short[] {0x3C00, (short) 0xC000}
        };
        ElementType[] types = {
            ElementType.FLOAT,
            ElementType.DOUBLE,
            ElementType.INT64,
            ElementType.INT32,
            ElementType.INT16,
            ElementType.INT8,
            ElementType.UINT8,
            ElementType.BOOL,
            ElementType.FLOAT16
        };
        for (int t = 0; t < types.length; t++) {
            List<TensorSpec> specs =
                    List.of(TensorSpec.tensor("v", types[t], List.of(Dim.symbolic("batch"), Dim.fixed(2))));
            RecordInputs[] rows = RecordInputs.batchRows("m", specs, 3);
            RecordInputs[] heap = {new RecordInputs("m", specs), new RecordInputs("m", specs)};
            for (int r = 0; r < 2; r++) {
                rows[r].reset();
                rows[r].put("v", values[t]);
                rows[r].detach(r);
                heap[r].put("v", values[t]);
                heap[r].detach();
            }
            assertThat(rows[1].isStaged(0)).isTrue();
            assertThat(rows[1].values(0)).as("%s", types[t]).isEqualTo(values[t]);
            assertThat(rows[1].inputBytes(0)).isEqualTo(heap[1].inputBytes(0));
            TensorPacker packer = new TensorPacker(OrtRuntime.env(), specs, 0, -1);
            assertThat(packed(packer, rows, 0, 2).get(0))
                    .as("%s", types[t])
                    .isEqualTo(packed(new TensorPacker(OrtRuntime.env(), specs, 0, -1), heap, 0, 2)
                            .get(0));
        }
    }

    @Test
    void stringsStayOnTheHeap() {
        List<TensorSpec> specs =
                List.of(TensorSpec.tensor("s", ElementType.STRING, List.of(Dim.symbolic("batch"), Dim.fixed(1))));
        RecordInputs[] rows = RecordInputs.batchRows("m", specs, 2);
        String[] given = {"a"};
        rows[0].reset();
        rows[0].put("s", given);
        rows[0].detach(0);
        given[0] = "changed";
        assertThat(rows[0].isStaged(0)).isFalse();
        assertThat(rows[0].values(0)).isEqualTo(new String[] {"a"});
    }

    @Test
    void aStagingGrownForAnOutlierBatchIsReleasedAfterwards() {
        RecordInputs[] rows = RecordInputs.batchRows("m", SPECS, 2);
        rows[0].reset();
        rows[0].put("x", x(0)).put("ids", new long[300_000]); // 2.4 MB
        rows[0].detach(0);
        RowStaging staging = rows[0].staging();
        assertThat(staging.retainedBytes()).isGreaterThanOrEqualTo(2_400_000);
        for (int i = 0; i <= TensorPacker.SHRINK_WINDOW; i++) {
            rows[0].reset();
            rows[0].put("x", x(i)).put("ids", ids(i, 3));
            rows[0].detach(0);
        }
        assertThat(staging.retainedBytes()).isLessThan(TensorPacker.SHRINK_FLOOR_BYTES);
        assertThat((long[]) rows[0].values(1)).containsExactly(ids(TensorPacker.SHRINK_WINDOW, 3));
    }
}
