package io.flinkonnx.flink;

import io.flinkonnx.flink.batching.BatchingInferenceOperator;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;

/** Flink's operator test harness around the batching operator; processing time is the harness's. */
public final class Harnesses {
    private Harnesses() {}

    public static <IN, OUT> OneInputStreamOperatorTestHarness<IN, OUT> open(
            OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, TypeInformation<IN> recordType) throws Exception {
        BatchingInferenceOperator<IN, OUT> operator =
                new BatchingInferenceOperator<>(spec, policy, FailedRecord.tag(recordType));
        OneInputStreamOperatorTestHarness<IN, OUT> harness = new OneInputStreamOperatorTestHarness<>(operator);
        harness.setProcessingTime(0);
        harness.open();
        return harness;
    }

    /** The harness with object reuse on: the operator then gets the same input instance again and again. */
    public static <IN, OUT> OneInputStreamOperatorTestHarness<IN, OUT> openWithObjectReuse(
            OnnxInferenceSpec<IN, OUT> spec, BatchPolicy policy, TypeInformation<IN> recordType) throws Exception {
        BatchingInferenceOperator<IN, OUT> operator =
                new BatchingInferenceOperator<>(spec, policy, FailedRecord.tag(recordType));
        OneInputStreamOperatorTestHarness<IN, OUT> harness = new OneInputStreamOperatorTestHarness<>(
                operator, recordType.createSerializer(new SerializerConfigImpl()));
        harness.getExecutionConfig().enableObjectReuse();
        harness.setProcessingTime(0);
        harness.open();
        return harness;
    }

    /** The operator inside {@code harness}. */
    @SuppressWarnings("unchecked")
    public static <IN, OUT> BatchingInferenceOperator<IN, OUT> operator(
            OneInputStreamOperatorTestHarness<IN, OUT> harness) {
        return (BatchingInferenceOperator<IN, OUT>) harness.getOperator();
    }

    public static <IN> List<FailedRecord<IN>> failed(
            OneInputStreamOperatorTestHarness<IN, ?> harness, TypeInformation<IN> recordType) {
        List<FailedRecord<IN>> out = new ArrayList<>();
        var queue = harness.getSideOutput(FailedRecord.tag(recordType));
        if (queue != null) {
            for (StreamRecord<FailedRecord<IN>> r : queue) {
                out.add(r.getValue());
            }
        }
        return out;
    }
}
