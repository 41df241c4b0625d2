package io.flinkonnx.cli;

import io.flinkonnx.flink.versions.ModelFolder;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.Path;

/**
 * Writes a checked model as version {@code N} of a watched model folder, through Flink's {@link FileSystem}
 * (a plain path is the local file system; {@code s3://}, {@code hdfs://}, ... need that file system on the
 * class path):
 *
 * <pre>
 * TO/vN/MODEL_FILE              the model, its .onnx or .ort name kept
 * TO/vN/MODEL_FILE.sha256       "&lt;64 lower-case hex&gt;  MODEL_FILE\n" (sha256sum's format)
 * TO/vN/test_data_set_K/...     each golden set, copied as it is
 * </pre>
 *
 * Everything is written to {@code TO/.vN.tmp-RANDOM/} first (the watcher ignores names starting with
 * {@code .} or {@code _}) and renamed to {@code TO/vN}. On object stores, whose "rename" is a copy of each
 * object in no set order, and where the file system refuses the rename, the files are written straight into
 * {@code TO/vN} instead, the model file last, so a version folder without its model is one still being
 * written. Whatever fails, the temporary folder is deleted, and so is a version folder this run started.
 */
final class Publisher {
    /** Schemes of Flink's object-store file systems: no atomic rename, write in place. */
    static final Set<String> OBJECT_STORES = Set.of("s3", "s3a", "s3n", "s3p", "gs", "oss", "obs", "cosn");

    private static final SecureRandom RANDOM = new SecureRandom();

    private Publisher() {}

    /** What was written. */
    static final class Published {
        /** The version folder, {@code TO/vN}. */
        final Path folder;
        /** The model file in it. */
        final Path model;

        final String sha256;
        final long bytes;
        /** The golden sets copied (folder names). */
        final List<String> dataSets;
        /** How the folder came to be: renamed from the temporary folder, or written in place (and why). */
        final String how;

        Published(Path folder, Path model, String sha256, long bytes, List<String> dataSets, String how) {
            this.folder = folder;
            this.model = model;
            this.sha256 = sha256;
            this.bytes = bytes;
            this.dataSets = dataSets;
            this.how = how;
        }
    }

    /** The folder {@code to} names: a path without a scheme is an absolute local {@code file:} path. */
    static Path folder(String to) {
        String trimmed = to.trim();
        if (trimmed.isEmpty()) {
            throw new IllegalArgumentException(
                    "--to is empty: give a folder path or a file system URI such as" + " s3://models/fraud/");
        }
        if (isLocalPath(trimmed)) {
            return new Path(
                    java.nio.file.Path.of(trimmed).toAbsolutePath().normalize().toUri());
        }
        return new Path(trimmed);
    }

    private static boolean isLocalPath(String s) {
        try {
            URI uri = new URI(s);
            return uri.getScheme() == null || uri.getScheme().length() == 1; // none, or a Windows drive letter
        } catch (URISyntaxException e) {
            return true;
        }
    }

    /** The Flink file system of {@code folder}, or a usage error saying which one is missing. */
    static FileSystem fileSystem(Path folder) {
        try {
            return folder.getFileSystem();
        } catch (IOException e) {
            throw new IllegalArgumentException(
                    "No Flink file system can write to " + folder + ": " + e.getMessage()
                            + " (for s3/gs/hdfs put that Flink file system's jar, e.g. flink-s3-fs-hadoop, on the"
                            + " class path)",
                    e);
        }
    }

    /**
     * The version folder {@code TO/NAME} for {@code version}, by the watcher's rule ({@link
     * ModelFolder#versionFolderName}: {@code 7} is {@code v7}; {@code v10}, {@code 2.10.0}, dates are kept).
     *
     * @throws IllegalArgumentException when the watcher would never take a version of that name
     */
    static Path versionFolder(Path to, String version) {
        return new Path(to, ModelFolder.versionFolderName(version));
    }

    /** A usage error (exit 2): the version folder exists already. */
    static IllegalArgumentException exists(Path folder) {
        return new IllegalArgumentException("Version folder " + folder + " already exists: a published version is"
                + " never overwritten; publish a higher version (to roll back, publish the old model as a new"
                + " version or point a control message at the old one)");
    }

    /**
     * Publishes {@code model} (a local file whose sha256 is {@code sha256}, as it was checked) as version
     * {@code version} under {@code to}, with the golden sets {@code dataSets} (local folders).
     *
     * @throws IllegalArgumentException when the version folder exists (before or while writing)
     * @throws IOException naming the file that could not be read or written
     * @throws IllegalStateException when the model's bytes are no longer the checked ones
     */
    static Published publish(
            FileSystem fs,
            Path to,
            String version,
            java.nio.file.Path model,
            String sha256,
            List<java.nio.file.Path> dataSets)
            throws IOException {
        Path target = versionFolder(to, version);
        if (fs.exists(target)) {
            throw exists(target);
        }
        String scheme =
                to.toUri().getScheme() == null ? "" : to.toUri().getScheme().toLowerCase(Locale.ROOT);
        if (OBJECT_STORES.contains(scheme)) {
            return writeInPlace(
                    fs,
                    target,
                    model,
                    sha256,
                    dataSets,
                    "written in place, model file last (" + scheme + ":// is an object store: no atomic rename)");
        }
        Path temp =
                new Path(to, "." + target.getName() + ".tmp-" + HexFormat.of().formatHex(randomBytes()));
        Throwable failure = null;
        try {
            write(fs, temp, model, sha256, dataSets);
            if (fs.exists(target)) {
                throw exists(target);
            }
            String refusal;
            try {
                refusal = fs.rename(temp, target) ? null : "the file system refused it";
            } catch (IOException | UnsupportedOperationException e) {
                refusal = e.toString();
            }
            if (refusal == null) {
                return published(target, model, sha256, dataSets, "written to " + temp + ", then renamed");
            }
            if (fs.exists(target)) {
                throw exists(target); // published by someone else meanwhile
            }
            return writeInPlace(
                    fs,
                    target,
                    model,
                    sha256,
                    dataSets,
                    "written in place, model file last (renaming " + temp + " failed: " + refusal + ")");
        } catch (IOException | RuntimeException | Error e) {
            failure = e;
            throw e;
        } finally {
            delete(fs, temp, failure);
        }
    }

    /** Deletes {@code path} if it exists; a failure to do so is added to {@code primary} when there is one. */
    private static void delete(FileSystem fs, Path path, Throwable primary) throws IOException {
        try {
            if (fs.exists(path)) {
                fs.delete(path, true);
            }
        } catch (IOException | RuntimeException e) {
            if (primary == null) {
                throw e;
            }
            primary.addSuppressed(e);
        }
    }

    private static Published writeInPlace(
            FileSystem fs,
            Path target,
            java.nio.file.Path model,
            String sha256,
            List<java.nio.file.Path> dataSets,
            String how)
            throws IOException {
        try {
            write(fs, target, model, sha256, dataSets);
        } catch (IOException | RuntimeException | Error e) {
            delete(fs, target, e);
            throw e;
        }
        return published(target, model, sha256, dataSets, how);
    }

    private static Published published(
            Path folder, java.nio.file.Path model, String sha256, List<java.nio.file.Path> dataSets, String how)
            throws IOException {
        String name = model.getFileName().toString();
        return new Published(
                folder,
                new Path(folder, name),
                sha256,
                Files.size(model),
                dataSets.stream().map(p -> p.getFileName().toString()).collect(Collectors.toList()),
                how);
    }

    /** The golden sets, then the .sha256 file, then the model: a folder holding the model is complete. */
    private static void write(
            FileSystem fs, Path folder, java.nio.file.Path model, String sha256, List<java.nio.file.Path> dataSets)
            throws IOException {
        if (!fs.mkdirs(folder)) {
            throw new IOException("Cannot create folder " + folder);
        }
        for (java.nio.file.Path set : dataSets) {
            copyFolder(fs, set, new Path(folder, set.getFileName().toString()));
        }
        String name = model.getFileName().toString();
        Path digestFile = new Path(folder, name + ".sha256");
        try (OutputStream out = fs.create(digestFile, FileSystem.WriteMode.NO_OVERWRITE)) {
            out.write((sha256 + "  " + name + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IOException("Cannot write " + digestFile + ": " + e, e);
        }
        copyModel(fs, model, new Path(folder, name), sha256);
    }

    /** Copies the model, hashing what it writes: bytes that are not the checked ones are never published. */
    private static void copyModel(FileSystem fs, java.nio.file.Path model, Path to, String sha256) throws IOException {
        MessageDigest digest = sha256();
        try (InputStream in = Files.newInputStream(model);
                OutputStream out = fs.create(to, FileSystem.WriteMode.NO_OVERWRITE)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                digest.update(buf, 0, n);
                out.write(buf, 0, n);
            }
        } catch (IOException e) {
            throw new IOException("Cannot copy model " + model + " to " + to + ": " + e, e);
        }
        String written = HexFormat.of().formatHex(digest.digest());
        if (!written.equals(sha256)) {
            throw new IllegalStateException("Model file " + model + " changed while it was published: its sha256 is"
                    + " now " + written + ", the checked model's was " + sha256 + "; nothing published");
        }
    }

    /** Copies every file below {@code from} (a local folder) to {@code to}, keeping relative paths. */
    private static void copyFolder(FileSystem fs, java.nio.file.Path from, Path to) throws IOException {
        List<java.nio.file.Path> files = new ArrayList<>();
        try (Stream<java.nio.file.Path> walk = Files.walk(from)) {
            walk.filter(p -> !Files.isDirectory(p)).sorted().forEach(files::add);
        }
        for (java.nio.file.Path file : files) {
            java.nio.file.Path relative = from.relativize(file);
            Path target = to;
            for (java.nio.file.Path part : relative) {
                target = new Path(target, part.toString());
            }
            try (InputStream in = Files.newInputStream(file);
                    OutputStream out = fs.create(target, FileSystem.WriteMode.NO_OVERWRITE)) {
                in.transferTo(out);
            } catch (IOException e) {
                throw new IOException("Cannot copy golden vector file " + file + " to " + target + ": " + e, e);
            }
        }
    }

    private static byte[] randomBytes() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return b;
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
