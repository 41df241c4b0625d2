package io.flinkonnx.model;

import io.flinkonnx.model.proto.OnnxProto.ModelProto;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Pattern;
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
 *       its plugin is installed. Such a model is copied to a local temporary folder, with its external data
 *       files beside it.
 * </ul>
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
public final class ModelSource implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final String CLASSPATH = "classpath:";
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");

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

    /** This source pinned to a sha256 (64 hex digits, case-insensitive) of the model file's bytes. */
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

    /** The pinned digest, lower-case hex. */
    public Optional<String> sha256() {
        return Optional.ofNullable(sha256);
    }

    /**
     * Fetches the model to a local file, computes its sha256, checks the pin, recognizes its format and,
     * for ONNX, parses and checks it (not ONNX, truncated, external data escaping its folder or missing).
     * Runtime limits (opset, IR) are checked separately with {@link LocalModel#checkRuntimeLimits}, since
     * they depend on the runtime.
     *
     * @throws ModelLoadException naming the URI and the cause
     */
    public LocalModel fetch() {
        if (uri.startsWith(CLASSPATH)) {
            return fetchFromClasspath();
        }
        Path local = localPath();
        if (local != null) {
            return fetchLocal(local);
        }
        return fetchRemote();
    }

    /** The local path this URI names, or null when it is not a local file URI. */
    private Path localPath() {
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
            return Path.of(uri);
        }
    }

    private LocalModel fetchLocal(Path path) {
        Path abs = path.toAbsolutePath();
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(abs);
        } catch (NoSuchFileException e) {
            throw new ModelLoadException("Model file not found: " + abs + describeUri(abs.toString()));
        } catch (IOException e) {
            throw new ModelLoadException("Model file " + abs + " cannot be read: " + e, e);
        }
        return accept(bytes, abs, null, null);
    }

    private LocalModel fetchFromClasspath() {
        String resource = uri.substring(CLASSPATH.length());
        while (resource.startsWith("/")) {
            resource = resource.substring(1);
        }
        ClassLoader loader = classLoaderHaving(resource);
        if (loader == null) {
            throw new ModelLoadException("Model not found on the classpath: " + uri
                    + " (no resource '" + resource + "' in the user code or library class loader)");
        }
        Path dir = createTempDir();
        try {
            Path target = dir.resolve(fileName(resource));
            byte[] bytes = copy(loader.getResource(resource), target);
            String parent = resource.contains("/") ? resource.substring(0, resource.lastIndexOf('/') + 1) : "";
            ClassLoader finalLoader = loader;
            return accept(bytes, target, dir, location -> {
                URL url = finalLoader.getResource(parent + location);
                if (url == null) {
                    throw new ModelLoadException("Model " + uri + " refers to external data '" + location
                            + "', which is not on the classpath beside it (" + parent + location + ")");
                }
                copy(url, dir.resolve(location));
            });
        } catch (RuntimeException | IOException e) {
            deleteRecursively(dir);
            throw asLoadException(e);
        }
    }

    private LocalModel fetchRemote() {
        org.apache.flink.core.fs.Path remote = new org.apache.flink.core.fs.Path(uri);
        FileSystem fs;
        try {
            fs = remote.getFileSystem();
        } catch (IOException e) {
            throw new ModelLoadException("No Flink file system can read model " + uri + ": " + e.getMessage()
                    + " (for s3/gs/azure, install the file system plugin in Flink's plugins/ folder)", e);
        }
        Path dir = createTempDir();
        try {
            Path target = dir.resolve(fileName(remote.getName()));
            byte[] bytes;
            try {
                bytes = copyRemote(fs, remote, target);
            } catch (FileNotFoundException e) {
                throw new ModelLoadException("Model file not found: " + uri + " (" + e.getMessage() + ")");
            }
            return accept(bytes, target, dir, location ->
                    copyRemote(fs, new org.apache.flink.core.fs.Path(remote.getParent(), location), dir.resolve(location)));
        } catch (RuntimeException | IOException e) {
            deleteRecursively(dir);
            throw asLoadException(e);
        }
    }

    @FunctionalInterface
    private interface ExternalFetcher {
        void fetch(String location) throws IOException;
    }

    /** Checks digest, format and (for ONNX) the protobuf and its external data, then wraps the result. */
    private LocalModel accept(byte[] bytes, Path file, Path tempDir, ExternalFetcher fetcher) {
        String digest = sha256Hex(bytes);
        if (sha256 != null && !sha256.equals(digest)) {
            throw new ModelLoadException("sha256 mismatch for model " + uri + ": expected " + sha256 + ", actual "
                    + digest + " (" + bytes.length + " bytes). The file changed, or the pin is wrong.");
        }
        ModelFormat format = ModelFormat.detect(bytes);
        if (format == ModelFormat.ORT) {
            return new LocalModel(this, file, tempDir, digest, bytes.length, format, null, null, List.of());
        }
        String label = tempDir == null ? file.toString() : uri;
        ModelProto proto = OnnxModelReader.parse(bytes, label);
        List<String> external = OnnxModelReader.externalDataLocations(proto);
        for (String location : external) {
            Path resolved = OnnxModelReader.resolveExternalData(file.getParent(), location, label);
            if (fetcher != null) {
                try {
                    Files.createDirectories(resolved.getParent());
                    fetcher.fetch(location);
                } catch (FileNotFoundException | NoSuchFileException e) {
                    throw new ModelLoadException("Model " + label + " refers to external data '" + location
                            + "', which was not found beside it: " + e.getMessage());
                } catch (IOException e) {
                    throw new ModelLoadException("Model " + label + ": cannot fetch external data '" + location + "': "
                            + e, e);
                }
            } else if (!Files.isRegularFile(resolved)) {
                throw new ModelLoadException("Model file " + label + " refers to external data '" + location
                        + "', which does not exist: " + resolved);
            }
        }
        ModelSignature signature = OnnxModelReader.signature(proto);
        RuntimeCheck check = limits -> OnnxModelReader.checkRuntimeLimits(proto, limits, label);
        return new LocalModel(this, file, tempDir, digest, bytes.length, format, signature, check, external);
    }

    /** Deferred check of runtime limits against the parsed protobuf. */
    @FunctionalInterface
    interface RuntimeCheck {
        void check(RuntimeLimits limits);
    }

    private static byte[] copyRemote(FileSystem fs, org.apache.flink.core.fs.Path from, Path to) throws IOException {
        try (InputStream in = fs.open(from)) {
            byte[] bytes = in.readAllBytes();
            Files.write(to, bytes);
            return bytes;
        }
    }

    private static byte[] copy(URL from, Path to) throws IOException {
        try (InputStream in = from.openStream(); OutputStream out = Files.newOutputStream(to)) {
            byte[] bytes = in.readAllBytes();
            out.write(bytes);
            return bytes;
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

    private static Path createTempDir() {
        try {
            return Files.createTempDirectory("flink-onnx-model-");
        } catch (IOException e) {
            throw new ModelLoadException("Cannot create a temporary folder for a model copy: " + e, e);
        }
    }

    private ModelLoadException asLoadException(Exception e) {
        if (e instanceof ModelLoadException) {
            return (ModelLoadException) e;
        }
        return new ModelLoadException("Model " + uri + " cannot be fetched: " + e, e);
    }

    static void deleteRecursively(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: a leftover temp file is not worth failing a job for
                }
            });
        } catch (IOException ignored) {
            // same
        }
    }

    /** Lower-case hex sha256 of {@code bytes}. */
    public static String sha256Hex(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JVM", e);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ModelSource && uri.equals(((ModelSource) o).uri)
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
