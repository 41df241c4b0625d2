package io.flinkonnx.flink;

import java.io.Serializable;
import org.apache.flink.annotation.Internal;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.util.OutputTag;

/**
 * What became of one model update on one subtask: promoted (it serves from now on), refused (the current
 * version keeps serving; {@link #reason} says why), restored (after a failover or a restart from a
 * savepoint, the version the checkpoint named), or already serving. Emitted on {@link #TAG}; a refusal is
 * also logged as a WARN and counted in {@code model_updates_refused}.
 *
 * <pre>{@code
 * DataStream<ModelUpdateReport> updates = scored.getSideOutput(ModelUpdateReport.TAG);
 * }</pre>
 */
@PublicEvolving
public class ModelUpdateReport implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The model-updates side output. */
    public static final OutputTag<ModelUpdateReport> TAG =
            new OutputTag<>("onnx-model-updates", TypeInformation.of(ModelUpdateReport.class));

    /** What happened. */
    public enum Outcome {
        /** The version was loaded, passed the gate and now serves. */
        PROMOTED,
        /** The version did not load, failed the gate or has another signature; the current one serves on. */
        REFUSED,
        /** After a restore: the version the checkpoint named serves again. */
        RESTORED,
        /** The update names the bytes already serving (same sha256): only the label was taken. */
        ALREADY_SERVING
    }

    public Outcome outcome;
    /**
     * With many models in one operator: the model the update was for (its {@link ModelRef}'s URI, a watched
     * folder's or a model file's); null in an operator of one model.
     */
    public String model;
    /** The version label of the update. */
    public String version;

    public String uri;
    /** The sha256 of the bytes loaded (null when the model could not be read). */
    public String sha256;
    /** The version serving after this update (the new one when promoted, else the one before). */
    public String servingVersion;
    /** Why it was refused; null otherwise. */
    public String reason;
    /** From the update's arrival (a control message, or the poll that found it) to the swap, in ms. */
    public long swapLatencyMillis;

    public int subtask;
    public long timestampMillis;

    /** An empty report, its fields to set (the operators fill them; Flink's POJO serializer needs it). */
    public ModelUpdateReport() {}

    /**
     * A report of {@code outcome} for an update on {@code subtask}: the one place the operators make theirs.
     *
     * @param outcome what became of the update
     * @param uri the model file the update named, or null
     * @param version the update's version label, or null
     * @param sha256 the model's sha256, or null when it was not read
     * @param reason why it was refused (or anything else worth saying), or null
     * @param subtask the subtask that judged it
     * @return the report, its other fields unset
     */
    @Internal
    public static ModelUpdateReport of(
            Outcome outcome, String uri, String version, String sha256, String reason, int subtask) {
        ModelUpdateReport r = new ModelUpdateReport();
        r.outcome = outcome;
        r.uri = uri;
        r.version = version;
        r.sha256 = sha256;
        r.reason = reason;
        r.subtask = subtask;
        return r;
    }

    @Override
    public String toString() {
        return "ModelUpdateReport{" + outcome + (model == null ? "" : " of " + model) + " " + version + " (" + uri
                + ") on subtask " + subtask + ", serving " + servingVersion + (reason == null ? "" : ": " + reason)
                + "}";
    }
}
