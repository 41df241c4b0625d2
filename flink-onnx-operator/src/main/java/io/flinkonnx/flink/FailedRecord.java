package io.flinkonnx.flink;

import java.util.Map;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.util.OutputTag;

/**
 * A record the batching operator could not score, with the reason and the model: a dead letter. The
 * rest of its batch is scored.
 *
 * <pre>{@code
 * SingleOutputStreamOperator<Scored> scored = OnnxInference.batched(txns, spec, BatchPolicy.defaults());
 * DataStream<FailedRecord<Txn>> failed = scored.getSideOutput(FailedRecord.tag(txns.getType()));
 * }</pre>
 *
 * @param <IN> the record type
 */
@PublicEvolving
public class FailedRecord<IN> {
    /** The id of the failed-records side output. */
    public static final String OUTPUT_TAG_ID = "onnx-failed-records";

    /** The record as it arrived. */
    public IN record;
    /** Why it failed: which input/output, what was expected, what was found; or ONNX Runtime's error. */
    public String reason;
    /** The model URI. */
    public String model;
    /** The exception class that carried the reason. */
    public String errorType;
    /** The label of the model version that was serving (see {@link OutputRow#modelVersion()}). */
    public String modelVersion;

    /** An empty failed record, for Flink's POJO serializer. */
    public FailedRecord() {}

    /**
     * A failed record; {@link #modelVersion} is left null.
     *
     * @param record the record as it arrived
     * @param reason why it failed
     * @param model the model URI
     * @param errorType the exception class that carried the reason
     */
    public FailedRecord(IN record, String reason, String model, String errorType) {
        this.record = record;
        this.reason = reason;
        this.model = model;
        this.errorType = errorType;
    }

    /**
     * The failed-records side output for records of {@code recordType} (Flink POJO, no Kryo).
     *
     * @param <IN> the record type
     * @param recordType the records' Flink type, e.g. {@code stream.getType()}
     * @return the side output's tag, with id {@link #OUTPUT_TAG_ID}
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public static <IN> OutputTag<FailedRecord<IN>> tag(TypeInformation<IN> recordType) {
        TypeInformation<FailedRecord<IN>> type = (TypeInformation) Types.POJO(
                FailedRecord.class,
                Map.of(
                        "record",
                        recordType,
                        "reason",
                        Types.STRING,
                        "model",
                        Types.STRING,
                        "errorType",
                        Types.STRING,
                        "modelVersion",
                        Types.STRING));
        return new OutputTag<>(OUTPUT_TAG_ID, type);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof FailedRecord)) {
            return false;
        }
        FailedRecord<?> f = (FailedRecord<?>) o;
        return Objects.deepEquals(record, f.record)
                && Objects.equals(reason, f.reason)
                && Objects.equals(model, f.model)
                && Objects.equals(errorType, f.errorType)
                && Objects.equals(modelVersion, f.modelVersion);
    }

    @Override
    public int hashCode() {
        return Objects.hash(reason, model, errorType);
    }

    @Override
    public String toString() {
        return "FailedRecord{" + reason + ", model=" + model + (modelVersion == null ? "" : " (" + modelVersion + ")")
                + ", record=" + record + "}";
    }
}
