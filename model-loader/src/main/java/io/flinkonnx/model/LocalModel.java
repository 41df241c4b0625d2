package io.flinkonnx.model;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.flink.annotation.PublicEvolving;

/**
 * A fetched and checked model file on the local disk, ready for ONNX Runtime. Remote, classpath and pinned
 * models are a private copy (the model and its external data, at the same relative locations) made from the
 * bytes that were hashed and checked; closing this deletes that copy. An unpinned local file is used in
 * place and left alone.
 */
@PublicEvolving
public final class LocalModel implements AutoCloseable {
    private final ModelSource source;
    private final Path path;
    private final Path tempDir;
    private final String sha256;
    private final String modelFileSha256;
    private final Map<String, String> externalDataSha256;
    private final long sizeBytes;
    private final ModelFormat format;
    private final ModelSignature signature;
    private final ModelSource.RuntimeCheck runtimeCheck;

    LocalModel(
            ModelSource source,
            Path path,
            Path tempDir,
            String sha256,
            String modelFileSha256,
            Map<String, String> externalDataSha256,
            long sizeBytes,
            ModelFormat format,
            ModelSignature signature,
            ModelSource.RuntimeCheck runtimeCheck) {
        this.source = source;
        this.path = path;
        this.tempDir = tempDir;
        this.sha256 = sha256;
        this.modelFileSha256 = modelFileSha256;
        this.externalDataSha256 = Collections.unmodifiableMap(new LinkedHashMap<>(externalDataSha256));
        this.sizeBytes = sizeBytes;
        this.format = format;
        this.signature = signature;
        this.runtimeCheck = runtimeCheck;
    }

    /** The external-data files the model refers to (relative to its folder), in first-use order. */
    public List<String> externalData() {
        return List.copyOf(new ArrayList<>(externalDataSha256.keySet()));
    }

    public ModelSource source() {
        return source;
    }

    /**
     * The local model file to hand to ONNX Runtime (external data lies beside it). For remote, classpath
     * and pinned models it is a private copy of the checked bytes, valid until {@link #close()}.
     */
    public Path path() {
        return path;
    }

    /**
     * The lower-case hex digest a {@link ModelSource#withSha256 pin} is checked against: the model file's
     * sha256 when it has no external data, else a digest covering the model file and every external-data
     * file (see {@link ModelSource#withSha256}).
     */
    public String sha256() {
        return sha256;
    }

    /** Lower-case hex sha256 of the model file alone. */
    public String modelFileSha256() {
        return modelFileSha256;
    }

    /** Lower-case hex sha256 of each external-data file, by location, in first-use order. */
    public Map<String, String> externalDataSha256() {
        return externalDataSha256;
    }

    /** Size of the model file in bytes (external data not included). */
    public long sizeBytes() {
        return sizeBytes;
    }

    public ModelFormat format() {
        return format;
    }

    /** The signature read from the protobuf; empty for {@code .ort} files (ask the session). */
    public Optional<ModelSignature> signature() {
        return Optional.ofNullable(signature);
    }

    /**
     * Fails with a {@link ModelLoadException} when the model needs a newer runtime (IR version or opset)
     * than {@code limits}. ORT-format files carry no opset imports to check and always pass.
     */
    public void checkRuntimeLimits(RuntimeLimits limits) {
        if (runtimeCheck != null) {
            runtimeCheck.check(limits);
        }
    }

    /** Deletes the private copy, if one was made; idempotent. */
    @Override
    public void close() {
        ModelSource.deleteRecursively(tempDir);
    }

    @Override
    public String toString() {
        return source.uri() + " (" + format + ", " + sizeBytes + " bytes, sha256 " + sha256 + ")";
    }
}
