package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtSession;
import io.flinkonnx.flink.session.OrtRuntime;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import io.flinkonnx.model.testing.OnnxGraph;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A classifier's outputs (fixed record dims, batch axis first) are written by ORT into tensors the outputs own,
 * made once per batch size, and read as ORT's own would be; a model whose outputs cannot be pinned, or whose
 * run into the pinned tensors fails, is scored with outputs ORT allocates.
 */
class PinnedOutputsTest {
    private static final TestModels.Mlp MLP = new TestModels.Mlp(4, 8, 3);
    private static final List<TensorSpec> INPUTS =
            List.of(TensorSpec.tensor("x", ElementType.FLOAT, List.of(Dim.symbolic("batch"), Dim.fixed(4))));

    @TempDir
    Path dir;

    private static List<TensorSpec> outputs(int declaredWidth) {
        return List.of(
                TensorSpec.tensor("y", ElementType.FLOAT, List.of(Dim.symbolic("batch"), Dim.fixed(declaredWidth))));
    }

    /** Scores records {@code first .. first+count)} in one run and checks each record's output. */
    private static void scoreAndCheck(
            OrtSession session, TensorPacker packer, RecordInputs[] rows, BatchOutputs outputs, int first, int count)
            throws Exception {
        for (int r = 0; r < count; r++) {
            rows[r].reset();
            rows[r].put("x", TestModels.features(first + r, MLP.in));
            rows[r].detach(r);
        }
        packer.run(session, null, rows, 0, count, outputs);
        for (int r = 0; r < count; r++) {
            assertThat(outputs.at(r).floats("y"))
                    .as("record %s of a batch of %s", first + r, count)
                    .containsExactly(MLP.reference(TestModels.features(first + r, MLP.in)), within(1e-5f));
            assertThat(outputs.shape("y")).containsExactly(MLP.out);
        }
    }

    @Test
    void aClassifiersOutputsArePinnedAndEveryBatchSizeReadsItsOwnRecords() throws Exception {
        Path model = MLP.writeTo(dir.resolve("mlp.onnx"));
        try (OrtSession session = OrtRuntime.env().createSession(model.toString());
                BatchOutputs outputs = new BatchOutputs("mlp", outputs(MLP.out), 8)) {
            assertThat(outputs.pins()).isTrue();
            TensorPacker packer = new TensorPacker(OrtRuntime.env(), INPUTS, 0, -1);
            RecordInputs[] rows = RecordInputs.batchRows("mlp", INPUTS, 9);
            scoreAndCheck(session, packer, rows, outputs, 0, 8);
            Object read = outputs.batchValues("y");
            scoreAndCheck(session, packer, rows, outputs, 50, 8);
            assertThat(outputs.batchValues("y"))
                    .as("the next batch of that size reuses its array")
                    .isSameAs(read);
            scoreAndCheck(session, packer, rows, outputs, 100, 3); // another size: its own tensors
            scoreAndCheck(session, packer, rows, outputs, 200, 8);
            scoreAndCheck(session, packer, rows, outputs, 300, 1);
            float[] alone = outputs.at(0).floats("y"); // a run of one: the decoder gets the run's array itself
            scoreAndCheck(session, packer, rows, outputs, 400, 1);
            assertThat(alone)
                    .as("a result of a run of one stays its own after the next run")
                    .containsExactly(MLP.reference(TestModels.features(300, MLP.in)), within(1e-5f));
            assertThat(outputs.pins()).isTrue();
        }
    }

    @Test
    void outputsWithAFreeRecordDimOrRunsLargerThanTheBoundAreNotPinned() {
        List<TensorSpec> free =
                List.of(TensorSpec.tensor("y", ElementType.FLOAT, List.of(Dim.symbolic("batch"), Dim.symbolic("n"))));
        assertThat(new BatchOutputs("m", free, 64).pins()).isFalse();
        assertThat(new BatchOutputs("m", outputs(3), 0).pins()).isFalse();
        int tooMany = (int) (BatchOutputs.MAX_PINNED_BYTES / (3 * 4)) + 1;
        assertThat(new BatchOutputs("m", outputs(3), tooMany).pins()).isFalse();
    }

    @Test
    void aModelThatWritesOtherShapesThanItDeclaresIsScoredUnpinned() throws Exception {
        // Declares y as [batch, 5]; Reshape to a shape that only the run knows (an input) writes [batch, 3].
        Path model = new OnnxGraph("declares_more")
                .input("x", ElementType.FLOAT, "batch", MLP.in)
                .output("y", ElementType.FLOAT, "batch", 5)
                .floatInitializer("w1", MLP.w1, MLP.in, MLP.hidden)
                .floatInitializer("b1", MLP.b1, MLP.hidden)
                .floatInitializer("w2", MLP.w2, MLP.hidden, MLP.out)
                .floatInitializer("b2", MLP.b2, MLP.out)
                .node("Gemm", new String[] {"x", "w1", "b1"}, new String[] {"h"})
                .node("Relu", new String[] {"h"}, new String[] {"hr"})
                .node("Gemm", new String[] {"hr", "w2", "b2"}, new String[] {"y"})
                .writeTo(dir.resolve("declares_more.onnx"));
        try (OrtSession session = OrtRuntime.env().createSession(model.toString());
                BatchOutputs outputs = new BatchOutputs("declares_more", outputs(5), 8)) {
            assertThat(outputs.pins()).isTrue();
            TensorPacker packer = new TensorPacker(OrtRuntime.env(), INPUTS, 0, -1);
            RecordInputs[] rows = RecordInputs.batchRows("declares_more", INPUTS, 9);
            scoreAndCheck(session, packer, rows, outputs, 0, 4);
            assertThat(outputs.pins())
                    .as("the pinned run failed where ORT's own outputs ran")
                    .isFalse();
            scoreAndCheck(session, packer, rows, outputs, 10, 8);
        }
    }
}
