package io.flinkonnx.model;

import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.apache.flink.annotation.PublicEvolving;
import org.apache.flink.core.fs.FileSystem;

/**
 * Where a model comes from, and optionally the sha256 it must have.
 *
 * <p>Accepted locations:
 *
 * <ul>
 *   <li>a local path ({@code models/fraud.onnx}) or {@code file:///...} URI;
 *   <li>{@code classpath:models/fraud.onnx}, looked up in the thread context class loader (Flink's user
 *       code class loader inside a task), then in this library's loader;
 *   <li>any URI a Flink {@link FileSystem} handles ({@code s3://}, {@code hdfs://}, {@code gs://}, ...) where
 *       its plugin is installed. Such a model is streamed to a local temporary folder, with its external data
 *       files beside it, and hashed while it streams.
 * </ul>
 *
 * <p>Every model, local ones included, pinned or not, is handed out as a private copy
 * ({@link LocalModel#path()}) made from the very bytes that were hashed and checked, so ONNX Runtime never
 * re-reads the original location and the digest always names what it loads; {@link LocalModel#close()}
 * deletes it.
 *
 * <pre>{@code
 * ModelSource source = ModelSource.of("s3://models/fraud-v3.onnx")
 *         .withSha256("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
 * try (LocalModel model = source.fetch()) {
 *     model.checkRuntimeLimits(limits);
 *     // hand model.path() to ONNX Runtime
 * }
 * }</pre>
 *
 * <p>Immutable and serializable: it travels inside Flink functions to the task managers.
 */
@PublicEvolving
public final class ModelSource implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final String CLASSPATH = "classpath:";
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
    /** A URI scheme; one letter is a Windows drive instead. */
    private static final Pattern URI_SCHEME = Pattern.compile("[A-Za-z][A-Za-z0-9+.-]+:");

    private final String uri;
    private final String sha256;

    private ModelSource(String uri, String sha256) {
        this.uri = uri;
        this.sha256 = sha256;
    }

    /** A model at {@code uri} (a path, {@code file:}, {@code classpath:} or any Flink file system URI). */
    public static ModelSource of(String uri) {
        Objects.requireNonNull(uri, "model uri");
        if (uri.isBlank()) {
            throw new IllegalArgumentException("Model URI is empty: give a path, a classpath: resource or a"
                    + " Flink file system URI such as s3://bucket/model.onnx");
        }
        return new ModelSource(uri.trim(), null);
    }

    /**
     * This source pinned to a sha256 (64 hex digits, case-insensitive) that covers every byte ONNX Runtime
     * will read: the model file and each of its external-data files. It is one digest:
     *
     * <ul>
     *   <li>for a model without external data (and for {@code .ort} files), the sha256 of the model file,
     *       what {@code sha256sum model.onnx} prints;
     *   <li>for a model with external data, the sha256 of a UTF-8 manifest: the model file's sha256 in
     *       lower-case hex and a newline, then for each distinct external-data location the model refers
     *       to, sorted by location (character order, as {@code LC_ALL=C sort}), a line
     *       {@code <sha256 of that file>  <location>} (two spaces, {@code sha256sum}'s format) ending in a
     *       newline. In a shell, from the model's folder:
     *       <pre>{@code (sha256sum < model.onnx | cut -c1-64; sha256sum weights.bin data/more.bin | LC_ALL=C sort -k2) | sha256sum}</pre>
     * </ul>
     *
     * <p>The simplest way to get it is {@link LocalModel#sha256()} of an unpinned fetch of bytes you trust.
     * A model, even a local one, is copied to a private temporary folder while it is hashed, and ONNX
     * Runtime is handed that copy, so a file rewritten after the check cannot reach it.
     */
    public ModelSource withSha256(String hex) {
        Objects.requireNonNull(hex, "sha256");
        String normalized = hex.trim().toLowerCase(Locale.ROOT);
        if (!SHA256.matcher(normalized).matches()) {
            throw new IllegalArgumentException("sha256 pin for " + uri + " must be 64 hexadecimal digits, got '" + hex
                    + "' (" + hex.length() + " characters)");
        }
        return new ModelSource(uri, normalized);
    }

    public String uri() {
        return uri;
    }

    /** The pinned digest, lower-case hex (see {@link #withSha256} for what it covers). */
    public Optional<String> sha256() {
        return Optional.ofNullable(sha256);
    }

    /**
     * Fetches the model to a local file, computes its sha256 (covering external data, see
     * {@link #withSha256}), checks the pin, recognizes its format and, for ONNX, parses and checks it (not
     * ONNX, truncated, external data escaping its folder or missing). Copies are made in the JVM's
     * temporary folder ({@code java.io.tmpdir}). Runtime limits (opset, IR) are checked separately with
     * {@link LocalModel#checkRuntimeLimits}, since they depend on the runtime.
     *
     * @throws ModelLoadException naming the URI and the cause
     */
    public LocalModel fetch() {
        return fetchUnder(null);
    }

    /**
     * Same as {@link #fetch()}, with the private copy made in a
     * new folder under {@code tempRoot}, for example one of Flink's {@code io.tmp.dirs}. Whatever happens
     * ({@code IOException}, a failed check, even an {@code Error}), a failed fetch leaves nothing there.
     *
     * @param tempRoot an existing folder
     * @throws ModelLoadException naming the URI and the cause
     */
    public LocalModel fetch(Path tempRoot) {
        Objects.requireNonNull(tempRoot, "tempRoot");
        return fetchUnder(tempRoot);
    }

    private LocalModel fetchUnder(Path tempRoot) {
        if (uri.startsWith(CLASSPATH)) {
            return fetchFromClasspath(tempRoot);
        }
        Path local = localPath(uri);
        if (local != null) {
            // Pinned or not, a local model is handed out as a private copy written while it is hashed: ORT
            // then loads exactly the bytes the digest names, even if the file is replaced in between (a
            // re-publish, a deploy script), and the model is streamed, never held in the heap whole.
            return fetchLocalCopy(local.toAbsolutePath(), tempRoot);
        }
        return fetchRemote(tempRoot);
    }

    /**
     * The local path {@code uri} names (a path, a {@code file:} URI, decoded, or a Windows drive path), or
     * null when it is not a local file URI.
     */
    static Path localPath(String uri) {
        try {
            URI parsed = new URI(uri);
            if (parsed.getScheme() == null) {
                return Path.of(uri);
            }
            if ("file".equalsIgnoreCase(parsed.getScheme())) {
                return Path.of(parsed);
            }
            if (parsed.getScheme().length() == 1) {
                return Path.of(uri); // a Windows drive letter, not a scheme
            }
            return null;
        } catch (URISyntaxException | IllegalArgumentException e) {
            // Not a valid java.net.URI (a space, a backslash): still a Flink file system URI when it starts with a
            // scheme other than file (Flink's Path quotes what URI refuses), else a path.
            return URI_SCHEME.matcher(uri).lookingAt() && !uri.regionMatches(true, 0, "file:", 0, 5)
                    ? null
                    : Path.of(uri);
        }
    }

    /** A local model: copied to a private folder while hashed, so ORT loads exactly the checked bytes. */
    private LocalModel fetchLocalCopy(Path abs, Path tempRoot) {
        String label = abs.toString();
        return fetchCopy(
                tempRoot,
                fileName(abs.getFileName() == null ? "" : abs.getFileName().toString()),
                label,
                new Origin() {
                    @Override
                    public InputStream openModel() throws IOException {
                        try {
                            return Files.newInputStream(abs);
                        } catch (NoSuchFileException e) {
                            throw new ModelLoadException("Model file not found: " + abs + describeUri(abs.toString()));
                        } catch (IOException e) {
                            throw new ModelLoadException("Model file " + abs + " cannot be read: " + e, e);
                        }
                    }

                    @Override
                    public InputStream openExternal(String location, String tensor) throws IOException {
                        return Files.newInputStream(existingExternalFile(abs.getParent(), location, tensor, label));
                    }
                });
    }

    private LocalModel fetchFromClasspath(Path tempRoot) {
        String resource = uri.substring(CLASSPATH.length());
        while (resource.startsWith("/")) {
            resource = resource.substring(1);
        }
        ClassLoader loader = classLoaderHaving(resource);
        if (loader == null) {
            throw new ModelLoadException("Model not found on the classpath: " + uri + " (no resource '" + resource
                    + "' in the user code or library class loader)");
        }
        URL model = loader.getResource(resource);
        String parent = resource.contains("/") ? resource.substring(0, resource.lastIndexOf('/') + 1) : "";
        return fetchCopy(tempRoot, fileName(resource), uri, new Origin() {
            @Override
            public InputStream openModel() throws IOException {
                return model.openStream();
            }

            @Override
            public InputStream openExternal(String location, String tensor) throws IOException {
                URL url = loader.getResource(parent + location);
                if (url == null) {
                    throw new ModelLoadException(
                            "Model " + uri + " refers to external data '" + location + "'" + tensorNote(tensor)
                                    + ", which is not on the classpath beside it (" + parent + location + ")");
                }
                return url.openStream();
            }
        });
    }

    private LocalModel fetchRemote(Path tempRoot) {
        org.apache.flink.core.fs.Path remote = new org.apache.flink.core.fs.Path(uri);
        FileSystem fs;
        try {
            fs = remote.getFileSystem();
        } catch (IOException e) {
            throw new ModelLoadException(
                    "No Flink file system can read model " + uri + ": " + e.getMessage()
                            + " (for s3/gs/azure, install the file system plugin in Flink's plugins/ folder)",
                    e);
        }
        return fetchCopy(tempRoot, fileName(remote.getName()), uri, new Origin() {
            @Override
            public InputStream openModel() throws IOException {
                try {
                    return fs.open(remote);
                } catch (FileNotFoundException e) {
                    throw new ModelLoadException("Model file not found: " + uri + " (" + e.getMessage() + ")");
                }
            }

            @Override
            public InputStream openExternal(String location, String tensor) throws IOException {
                return fs.open(new org.apache.flink.core.fs.Path(remote.getParent(), location));
            }
        });
    }

    /** Where a copied model's files are read from. */
    private interface Origin {
        /** Opens the model file; throws a {@link ModelLoadException} when it does not exist. */
        InputStream openModel() throws IOException;

        /** Opens the external-data file at {@code location} (already checked: relative, no {@code ..}). */
        InputStream openExternal(String location, String tensor) throws IOException;
    }

    /** Size and sha256 of one file, as streamed. */
    static final class FileDigest {
        final String sha256;
        final long size;

        FileDigest(String sha256, long size) {
            this.sha256 = sha256;
            this.size = size;
        }
    }

    /**
     * Streams the model and its external data into a new private folder under {@code tempRoot}, hashing
     * while streaming, then checks the copy. The folder is deleted on every failure, {@code Error}s included.
     */
    private LocalModel fetchCopy(Path tempRoot, String modelName, String label, Origin origin) {
        Path dir = createTempDir(tempRoot);
        try {
            return copyAndCheck(dir, modelName, label, origin);
        } catch (ModelLoadException e) {
            deleteAfterFailure(dir, e);
            throw e;
        } catch (IOException e) {
            deleteAfterFailure(dir, e);
            throw new ModelLoadException("Model " + uri + " cannot be fetched: " + e, e);
        } catch (Throwable t) {
            deleteAfterFailure(dir, t);
            throw t;
        }
    }

    private LocalModel copyAndCheck(Path dir, String modelName, String label, Origin origin) throws IOException {
        Path target = dir.resolve(modelName);
        FileDigest model;
        try (InputStream in = origin.openModel()) {
            model = copyHashing(in, target);
        }
        ModelFormat format = detectFormat(target);
        ModelProto proto = format == ModelFormat.ONNX ? OnnxModelReader.parseStructure(target, label) : null;
        Map<String, FileDigest> external = new LinkedHashMap<>();
        for (Map.Entry<String, String> ref : externalReferences(proto).entrySet()) {
            String location = ref.getKey();
            String tensor = ref.getValue();
            Path relative = OnnxModelReader.checkExternalDataLocation(location, tensor, label);
            Path copy = dir.resolve(relative).normalize();
            try {
                Files.createDirectories(copy.getParent());
                try (InputStream in = origin.openExternal(location, tensor)) {
                    external.put(location, copyHashing(in, copy));
                }
            } catch (FileNotFoundException | NoSuchFileException e) {
                throw new ModelLoadException("Model " + label + " refers to external data '" + location + "'"
                        + tensorNote(tensor) + ", which was not found beside it: " + e.getMessage());
            } catch (IOException e) {
                throw new ModelLoadException(
                        "Model " + label + ": cannot fetch external data '" + location + "'" + tensorNote(tensor) + ": "
                                + e,
                        e);
            }
        }
        return verified(target, dir, label, model, external, format, proto);
    }

    /** Checks the pin against the digest of everything read, then wraps the result. */
    private LocalModel verified(
            Path file,
            Path tempDir,
            String label,
            FileDigest model,
            Map<String, FileDigest> external,
            ModelFormat format,
            ModelProto proto) {
        Map<String, String> externalSha256 = new LinkedHashMap<>();
        external.forEach((location, d) -> externalSha256.put(location, d.sha256));
        String digest = pinDigest(model.sha256, externalSha256);
        if (sha256 != null && !sha256.equals(digest)) {
            throw new ModelLoadException(mismatch(file, digest, model, external));
        }
        if (proto == null) {
            return new LocalModel(
                    this, file, tempDir, digest, model.sha256, externalSha256, model.size, format, null, null);
        }
        ModelSignature signature = OnnxModelReader.signature(proto);
        RuntimeCheck check = limits -> OnnxModelReader.checkRuntimeLimits(proto, limits, label);
        return new LocalModel(
                this, file, tempDir, digest, model.sha256, externalSha256, model.size, format, signature, check);
    }

    private String mismatch(Path file, String digest, FileDigest model, Map<String, FileDigest> external) {
        if (external.isEmpty()) {
            return "sha256 mismatch for model " + uri + ": expected " + sha256 + ", actual " + digest + " ("
                    + model.size + " bytes). The file changed, or the pin is wrong.";
        }
        StringBuilder m = new StringBuilder("sha256 mismatch for model ")
                .append(uri)
                .append(": expected ")
                .append(sha256)
                .append(", actual ")
                .append(digest)
                .append(
                        ". The pin covers the model file and its external data (see ModelSource.withSha256): model file ")
                .append(file.getFileName())
                .append(" sha256 ")
                .append(model.sha256)
                .append(" (")
                .append(model.size)
                .append(" bytes)");
        external.forEach((location, d) -> m.append(", external data '")
                .append(location)
                .append("' sha256 ")
                .append(d.sha256)
                .append(" (")
                .append(d.size)
                .append(" bytes)"));
        m.append(". A file changed, or the pin is wrong.");
        if (sha256.equals(model.sha256)) {
            m.append(" The pin is the sha256 of the model file alone, which does not cover its external data.");
        }
        return m.toString();
    }

    /**
     * The digest a pin is checked against: the model file's sha256 when there is no external data, else
     * the sha256 of the manifest {@link #withSha256} describes.
     */
    static String pinDigest(String modelSha256, Map<String, String> externalSha256) {
        if (externalSha256.isEmpty()) {
            return modelSha256;
        }
        StringBuilder manifest = new StringBuilder(modelSha256).append('\n');
        new TreeMap<>(externalSha256)
                .forEach((location, digest) ->
                        manifest.append(digest).append("  ").append(location).append('\n'));
        return sha256Hex(manifest.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** Location -> first tensor referring to it; empty for ORT-format files. */
    private static Map<String, String> externalReferences(ModelProto proto) {
        return proto == null ? Map.of() : OnnxModelReader.externalDataReferences(proto);
    }

    /** The confined, existing external-data file of a local model. */
    private static Path existingExternalFile(Path modelDir, String location, String tensor, String label) {
        Path resolved = OnnxModelReader.resolveExternalData(modelDir, location, tensor, label);
        if (!Files.isRegularFile(resolved)) {
            throw new ModelLoadException("Model file " + label + " refers to external data '" + location
                    + "', which does not exist: " + resolved + tensorNote(tensor));
        }
        return resolved;
    }

    private static String tensorNote(String tensor) {
        return tensor == null ? "" : " (tensor '" + tensor + "')";
    }

    /** Deferred check of runtime limits against the parsed protobuf. */
    @FunctionalInterface
    interface RuntimeCheck {
        void check(RuntimeLimits limits);
    }

    private static final int BUFFER_SIZE = 64 * 1024;

    /**
     * Streams {@code in} to {@code target} (or nowhere, when null) through a SHA-256 digest with a fixed
     * buffer: the file is never held in memory, whatever its size. Does not close {@code in}.
     */
    static FileDigest copyHashing(InputStream in, Path target) throws IOException {
        MessageDigest md = newSha256();
        DigestInputStream digesting = new DigestInputStream(in, md);
        byte[] buffer = new byte[BUFFER_SIZE];
        long size = 0;
        try (OutputStream out = target == null ? OutputStream.nullOutputStream() : Files.newOutputStream(target)) {
            for (int n; (n = digesting.read(buffer)) != -1; ) {
                out.write(buffer, 0, n);
                size += n;
            }
        }
        return new FileDigest(HexFormat.of().formatHex(md.digest()), size);
    }

    private static ModelFormat detectFormat(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return ModelFormat.detect(in.readNBytes(8));
        }
    }

    private static ClassLoader classLoaderHaving(String resource) {
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        if (context != null && context.getResource(resource) != null) {
            return context;
        }
        ClassLoader own = ModelSource.class.getClassLoader();
        return own != null && own.getResource(resource) != null ? own : null;
    }

    private String describeUri(String shown) {
        return shown.equals(uri) ? "" : " (model URI '" + uri + "')";
    }

    private static String fileName(String path) {
        String name = path.substring(path.lastIndexOf('/') + 1);
        return name.isEmpty() ? "model.onnx" : name;
    }

    private static Path createTempDir(Path root) {
        try {
            // Owner-only permissions on POSIX file systems: the copy is private to this user.
            return root == null
                    ? Files.createTempDirectory("flink-onnx-model-")
                    : Files.createTempDirectory(root, "flink-onnx-model-");
        } catch (IOException e) {
            throw new ModelLoadException(
                    "Cannot create a temporary folder for a model copy" + (root == null ? "" : " under " + root) + ": "
                            + e,
                    e);
        }
    }

    private static void deleteAfterFailure(Path dir, Throwable failure) {
        try {
            deleteRecursively(dir);
        } catch (Throwable t) {
            failure.addSuppressed(t);
        }
    }

    static void deleteRecursively(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: a leftover temp file is not worth failing a job for
                }
            });
        } catch (IOException | UncheckedIOException ignored) {
            // same
        }
    }

    /** Lower-case hex sha256 of {@code bytes}. */
    public static String sha256Hex(byte[] bytes) {
        return HexFormat.of().formatHex(newSha256().digest(bytes));
    }

    private static MessageDigest newSha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JVM", e);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ModelSource
                && uri.equals(((ModelSource) o).uri)
                && Objects.equals(sha256, ((ModelSource) o).sha256);
    }

    @Override
    public int hashCode() {
        return Objects.hash(uri, sha256);
    }

    @Override
    public String toString() {
        return sha256 == null ? uri : uri + "@sha256:" + sha256;
    }
}
