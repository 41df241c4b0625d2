package io.flinkonnx.model;

import java.nio.file.Path;
import java.util.Optional;

/**
 * A fetched and checked model file on the local disk, ready for ONNX Runtime. Closing it deletes the
 * temporary copy, if one was made (remote and classpath models); a local file is left alone.
 */
public final class LocalModel implements AutoCloseable {
    private final ModelSource source;
    private final Path path;
    private final Path tempDir;
    private final String sha256;
    private final long sizeBytes;
    private final ModelFormat format;
    private final ModelSignature signature;
    private final ModelSource.RuntimeCheck runtimeCheck;
    private final java.util.List<String> externalData;

    LocalModel(ModelSource source, Path path, Path tempDir, String sha256, long sizeBytes, ModelFormat format,
            ModelSignature signature, ModelSource.RuntimeCheck runtimeCheck, java.util.List<String> externalData) {
        this.source = source;
        this.path = path;
        this.tempDir = tempDir;
        this.sha256 = sha256;
        this.sizeBytes = sizeBytes;
        this.format = format;
        this.signature = signature;
        this.runtimeCheck = runtimeCheck;
        this.externalData = java.util.List.copyOf(externalData);
    }

    /** The external-data files the model refers to (relative to its folder), in first-use order. */
    public java.util.List<String> externalData() {
        return externalData;
    }

    public ModelSource source() {
        return source;
    }

    /** The local model file to hand to ONNX Runtime (external data lies beside it). */
    public Path path() {
        return path;
    }

    /** Lower-case hex sha256 of the model file. */
    public String sha256() {
        return sha256;
    }

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

    @Override
    public void close() {
        ModelSource.deleteRecursively(tempDir);
    }

    @Override
    public String toString() {
        return source.uri() + " (" + format + ", " + sizeBytes + " bytes, sha256 " + sha256 + ")";
    }
}
