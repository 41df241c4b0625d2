package io.flinkonnx.flink;

import java.io.Serializable;
import java.util.Objects;
import org.apache.flink.annotation.PublicEvolving;

/**
 * An instruction to serve another version of the model: where it is, optionally the sha256 it must have,
 * and the label that predictions and reports will name it by. Sent on a control stream (in the Kafka job,
 * one JSON message on the {@code model-updates} topic); a watched folder produces the same updates.
 *
 * <pre>{@code
 * DataStream<ModelUpdate> updates = env.fromData(
 *         ModelUpdate.of("s3://models/fraud/v8/model.onnx", "v8").withSha256("9f86d0..."));
 * }</pre>
 *
 * <p>Rolling back is publishing an update that names an older version. With many models in one operator
 * ({@link OnnxInference#batchedPerModel}), an update names the model it is for ({@link #forModel}): it pins that
 * model to this version until the next update for it. A Flink POJO: public fields, a no-argument constructor.
 */
@PublicEvolving
public class ModelUpdate implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The model's location: a path, {@code classpath:} resource or any Flink file system URI. */
    public String uri;
    /** The sha256 pin (64 hex digits, see {@code ModelSource.withSha256}), or null for none. */
    public String sha256;
    /** The version label predictions, dead letters and reports carry (e.g. {@code v8}). */
    public String version;
    /**
     * With many models in one operator: which model this update is for, the URI of its {@link ModelRef} (a
     * watched folder's or a model file's) or its version label ({@link ModelRef#withVersion}); null in an operator
     * of one model.
     */
    public String model;

    /** An empty update, its fields to set (Flink's POJO rules need it). */
    public ModelUpdate() {}

    /**
     * An update to the model at {@code uri}. Nothing is checked here: an update the operator cannot apply (no URI,
     * a malformed pin, a model that does not load) is refused when it arrives, with a {@link ModelUpdateReport}.
     *
     * @param uri the model's location, a path, {@code classpath:} resource or any Flink file system URI
     * @param sha256 the pin, 64 hex digits, or null for none
     * @param version the label predictions and reports carry, or null for the model file's name
     */
    public ModelUpdate(String uri, String sha256, String version) {
        this.uri = uri;
        this.sha256 = sha256;
        this.version = version;
    }

    /**
     * The model at {@code uri}, labelled {@code version}, without a pin.
     *
     * @param uri the model's location, a path, {@code classpath:} resource or any Flink file system URI
     * @param version the label predictions and reports carry (e.g. {@code v8}), or null for the model file's name
     * @return a new update, for the only model of its operator (see {@link #forModel})
     */
    public static ModelUpdate of(String uri, String version) {
        return new ModelUpdate(uri, null, version);
    }

    /**
     * This update pinned to {@code hex}.
     *
     * @param hex the sha256 the model's bytes must have, 64 hex digits (checked when the update is applied)
     * @return a new update; this one is unchanged
     */
    public ModelUpdate withSha256(String hex) {
        ModelUpdate u = new ModelUpdate(uri, hex, version);
        u.model = model;
        return u;
    }

    /**
     * This update for the model {@code model} of a many-model operator: the URI of its {@link ModelRef} (for
     * {@code ModelRef.watch("s3://models/fraud-DE/")}, that folder) or its version label.
     *
     * @param model the URI or version label of the model's {@link ModelRef}; in a many-model operator, an update
     *     naming no model is refused
     * @return a new update; this one is unchanged
     */
    public ModelUpdate forModel(String model) {
        ModelUpdate u = new ModelUpdate(uri, sha256, version);
        u.model = model;
        return u;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof ModelUpdate)) {
            return false;
        }
        ModelUpdate u = (ModelUpdate) o;
        return Objects.equals(uri, u.uri)
                && Objects.equals(sha256, u.sha256)
                && Objects.equals(version, u.version)
                && Objects.equals(model, u.model);
    }

    @Override
    public int hashCode() {
        return Objects.hash(uri, sha256, version, model);
    }

    @Override
    public String toString() {
        return "ModelUpdate{" + (model == null ? "" : "model=" + model + ", ") + "version=" + version + ", uri=" + uri
                + (sha256 == null ? "" : ", sha256=" + sha256) + "}";
    }
}
