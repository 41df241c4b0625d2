package io.flinkonnx.flink.engine;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.Harnesses;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.flink.Runners;
import java.nio.file.Path;
import java.time.Duration;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;

/**
 * Run in a child JVM by {@link EmptyRecordTest}: feeds zero-length sequences to a model that divides by
 * the sequence length (which kills the process with SIGFPE if one reaches ORT) through the map function's
 * runner, a batch of one flushed by its timer, and a batch that holds good records too. Prints what
 * happened to each; exits 0 only if the process survived all three.
 */
public final class EmptyRecordProbe {
    private static final TypeInformation<long[]> IDS = PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO;

    private EmptyRecordProbe() {}

    public static void main(String[] args) throws Exception {
        String model = Path.of(args[0]).toString();
        OnnxInferenceSpec<long[], Long> spec = OnnxInference.<long[]>builder(model)
                .encoder((ids, row) -> row.put("ids", ids))
                .decoder((ids, out) -> out.longs("avg")[0], Types.LONG)
                .build();

        try (InferenceRunner<long[], Long> runner = Runners.open(spec)) {
            runner.infer(new long[0]);
            System.out.println("MAP: scored an empty record");
        } catch (RecordConversionException e) {
            System.out.println("MAP_FAILED: " + e.getMessage());
        }

        BatchPolicy policy = BatchPolicy.builder()
                .maxBatchSize(8)
                .maxBatchDelay(Duration.ofMillis(5))
                .build();
        try (OneInputStreamOperatorTestHarness<long[], Long> h = Harnesses.open(spec, policy, IDS)) {
            h.processElement(new long[0], 1);
            h.setProcessingTime(10); // the timer flushes a batch of one
            print("ALONE", h);
        }
        try (OneInputStreamOperatorTestHarness<long[], Long> h = Harnesses.open(spec, policy, IDS)) {
            h.processElement(new long[] {4, 6}, 1);
            h.processElement(new long[0], 2);
            h.processElement(new long[] {9}, 3);
            h.endInput();
            print("MIXED", h);
        }
        System.out.println("SURVIVED");
    }

    private static void print(String label, OneInputStreamOperatorTestHarness<long[], Long> h) {
        System.out.println(label + "_SCORED: " + h.extractOutputValues());
        for (FailedRecord<long[]> f : Harnesses.failed(h, IDS)) {
            System.out.println(label + "_DEAD_LETTER: " + f.reason);
        }
    }
}
