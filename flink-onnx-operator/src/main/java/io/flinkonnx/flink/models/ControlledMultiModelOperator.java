package io.flinkonnx.flink.models;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.ModelCache;
import io.flinkonnx.flink.ModelSelector;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInferenceSpec;
import org.apache.flink.annotation.Internal;
import org.apache.flink.streaming.api.operators.BoundedMultiInput;
import org.apache.flink.streaming.api.operators.TwoInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.LatencyMarker;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.util.OutputTag;

/**
 * The many-model operator with a second input: a broadcast control stream of {@link ModelUpdate}s, each naming the
 * model it is for. Records come on the first input. The control stream carries no event time: its watermarks and
 * idleness are ignored, so a quiet control topic never holds the records' watermark back.
 */
@Internal
public final class ControlledMultiModelOperator<IN, OUT> extends MultiModelOperator<IN, OUT>
        implements TwoInputStreamOperator<IN, ModelUpdate, OUT>, BoundedMultiInput {
    private static final long serialVersionUID = 1L;

    public ControlledMultiModelOperator(
            OnnxInferenceSpec<IN, OUT> spec,
            ModelSelector<IN> selector,
            BatchPolicy policy,
            ModelCache cache,
            OutputTag<FailedRecord<IN>> failedTag,
            ModelUpdates updates) {
        super(spec, selector, policy, cache, failedTag, updates);
    }

    @Override
    public void processElement1(StreamRecord<IN> element) throws Exception {
        processElement(element);
    }

    @Override
    public void processElement2(StreamRecord<ModelUpdate> element) throws Exception {
        offerUpdate(element.getValue());
    }

    @Override
    public void processWatermark1(Watermark mark) throws Exception {
        processWatermark(mark);
    }

    @Override
    public void processWatermark2(Watermark mark) {
        // the control stream has no event time of its own
    }

    @Override
    protected void processWatermarkStatus(WatermarkStatus status, int index) throws Exception {
        if (index == 0) {
            processWatermarkStatus(status);
        }
    }

    @Override
    public void processLatencyMarker1(LatencyMarker marker) throws Exception {
        processLatencyMarker(marker);
    }

    @Override
    public void processLatencyMarker2(LatencyMarker marker) {}

    @Override
    public void endInput(int inputId) throws Exception {
        if (inputId == 1) {
            endInput();
        }
    }
}
