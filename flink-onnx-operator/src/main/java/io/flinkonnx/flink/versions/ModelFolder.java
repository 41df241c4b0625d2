package io.flinkonnx.flink.versions;

import io.flinkonnx.model.VersionLabel;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.annotation.Internal;
import org.apache.flink.core.fs.FileStatus;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.Path;

/**
 * A watched model folder, through Flink's file systems: which versions it holds and which is the newest
 * (the rule is documented on {@code ModelUpdates}).
 */
@Internal
public final class ModelFolder {
    private static final Pattern DIGIT_RUNS = Pattern.compile("\\d+");
    private static final Pattern SHA256 = Pattern.compile("[0-9a-fA-F]{64}");
    private static final int MAX_SHA_FILE_BYTES = 4096;

    private ModelFolder() {}

    /** One version found in the folder. */
    public static final class Version {
        /** The model file's URI. */
        public final String modelUri;
        /** The version's name: the sub-folder's name, or the model file's name without its extension. */
        public final String label;
        /** The last number in the label, or -1 (the order compares every number: see {@link #newest}). */
        public final long number;

        public final long modificationTime;
        public final long length;
        /** The pin from a sha256 file beside the model, or null. */
        public final String sha256;

        Version(String modelUri, String label, long number, long modificationTime, long length, String sha256) {
            this.modelUri = modelUri;
            this.label = label;
            this.number = number;
            this.modificationTime = modificationTime;
            this.length = length;
            this.sha256 = sha256;
        }

        /** What tells a version's bytes apart between two polls without reading them. */
        public String identity() {
            return modelUri + "@" + modificationTime + "/" + length + "/" + sha256;
        }

        @Override
        public String toString() {
            return label + " (" + modelUri + ")";
        }
    }

    /**
     * The newest version in {@code folderUri}, if it holds any. Versions are ordered by name first (only the
     * newest's files are read, so a poll costs a listing or two however many versions the folder keeps); a
     * version folder without a model file is passed over for the next.
     *
     * @throws IOException when the folder cannot be listed, or the newest version's sha256 file is malformed
     *     (the message names it)
     */
    public static Optional<Version> newest(String folderUri) throws IOException {
        Path folder = new Path(folderUri);
        FileSystem fs = folder.getFileSystem();
        FileStatus[] entries = fs.listStatus(folder);
        if (entries == null) {
            throw new IOException("The watched model folder " + folderUri + " does not exist");
        }
        List<FileStatus> candidates = new ArrayList<>();
        for (FileStatus entry : entries) {
            String name = entry.getPath().getName();
            if (!ignored(name) && (entry.isDir() || isModelFile(name))) {
                candidates.add(entry);
            }
        }
        boolean anyNumbered = candidates.stream().anyMatch(e -> numbersIn(labelOfEntry(e)).length > 0);
        candidates.removeIf(e -> anyNumbered && numbersIn(labelOfEntry(e)).length == 0);
        candidates.sort(Comparator.<FileStatus, long[]>comparing(e -> numbersIn(labelOfEntry(e)), ModelFolder::compare)
                .thenComparingLong(FileStatus::getModificationTime)
                .thenComparing(e -> e.getPath().getName())
                .reversed());
        for (FileStatus entry : candidates) {
            FileStatus model = entry.isDir() ? modelIn(fs, entry.getPath()) : entry;
            if (model != null) {
                return Optional.of(version(fs, model, labelOfEntry(entry)));
            }
        }
        return Optional.empty();
    }

    /**
     * The folder name under which {@code name} is published as a version the watcher orders (one rule for the
     * watcher and for {@code flink-onnx-cli publish}): a bare number {@code N} is {@code vN}; any other name
     * is kept ({@code v2}, {@code v10}, {@code 2.10.0}, {@code 2026-12-04}, {@code fraud-7}).
     *
     * @throws IllegalArgumentException when the watcher would never take a version of that name: it is not one
     *     path segment, it starts with '.' or '_' (ignored, as a version being written), or it holds no number
     *     (passed over wherever a version has one)
     */
    public static String versionFolderName(String name) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("A version name must not be empty");
        }
        if (name.contains("/") || name.contains("\\") || name.contains(":") || name.equals("..")) {
            throw new IllegalArgumentException(
                    "A version name is one folder name, without '/', '\\' or ':'; got '" + name + "'");
        }
        if (ignored(name)) {
            throw new IllegalArgumentException("A version name must not start with '.' or '_' (the watcher ignores"
                    + " such names, as versions still being written); got '" + name + "'");
        }
        if (numbersIn(name).length == 0) {
            throw new IllegalArgumentException("A version name must hold a number, the watcher's order (v10 after"
                    + " v9, 2.10.0 after 2.9.9, dates in order); got '" + name + "'");
        }
        return name.chars().allMatch(c -> c >= '0' && c <= '9') ? "v" + name : name;
    }

    private static String labelOfEntry(FileStatus entry) {
        String name = entry.getPath().getName();
        return entry.isDir() ? name : stripExtension(name);
    }

    /** Every run of digits in a name, as numbers: {@code 2.10.0} is (2, 10, 0), {@code fraud-7} is (7). */
    static long[] numbersIn(String label) {
        Matcher m = DIGIT_RUNS.matcher(label);
        List<Long> numbers = new ArrayList<>();
        while (m.find()) {
            String digits = m.group();
            // a number too long for a long still orders above every shorter one
            numbers.add(digits.length() > 18 ? Long.MAX_VALUE : Long.parseLong(digits));
        }
        return numbers.stream().mapToLong(Long::longValue).toArray();
    }

    /** Numbers compared run by run ({@code 2.10.0} after {@code 2.9.9}, {@code 1.2.1} after {@code 1.2}). */
    private static int compare(long[] a, long[] b) {
        for (int i = 0; i < Math.min(a.length, b.length); i++) {
            if (a[i] != b[i]) {
                return Long.compare(a[i], b[i]);
            }
        }
        return Integer.compare(a.length, b.length);
    }

    /**
     * A version's label from its model URI, by the same rule as the folder's versions and the runner's default
     * label: {@link VersionLabel#ofUri}.
     */
    public static String labelOf(String modelUri) {
        return VersionLabel.ofUri(modelUri);
    }

    /**
     * What tells a model file's bytes apart without reading them (modification time and length), or null for a
     * classpath resource or a file that is not there.
     */
    public static String fileState(String modelUri) throws IOException {
        if (modelUri.startsWith("classpath:")) {
            return null;
        }
        Path file = new Path(modelUri);
        FileSystem fs = file.getFileSystem();
        if (!fs.exists(file)) {
            return null;
        }
        FileStatus status = fs.getFileStatus(file);
        return status.getModificationTime() + "/" + status.getLen();
    }

    /** Whether two model URIs name one file (a path and its {@code file:} URI, say); false when unsure. */
    public static boolean sameFile(String a, String b) {
        if (a.equals(b)) {
            return true;
        }
        if (a.startsWith("classpath:") || b.startsWith("classpath:")) {
            return false;
        }
        try {
            Path pa = new Path(a);
            Path pb = new Path(b);
            return pa.makeQualified(pa.getFileSystem()).equals(pb.makeQualified(pb.getFileSystem()));
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** The folder of a model URI (where its golden vectors may be), or null for a classpath resource. */
    public static String folderOf(String modelUri) {
        if (modelUri.startsWith("classpath:")) {
            return null;
        }
        Path parent = new Path(modelUri).getParent();
        return parent == null ? null : parent.toString();
    }

    /**
     * Copies each {@code test_data_set_*} folder of {@code folderUri} into {@code into}; returns how many
     * there were (0 when none, or when the folder cannot be listed).
     */
    public static int copyGoldenVectors(String folderUri, java.nio.file.Path into) throws IOException {
        Path folder = new Path(folderUri);
        FileSystem fs = folder.getFileSystem();
        if (!fs.exists(folder)) {
            return 0;
        }
        FileStatus[] entries = fs.listStatus(folder);
        int sets = 0;
        for (FileStatus set : entries == null ? new FileStatus[0] : entries) {
            if (!set.isDir() || !set.getPath().getName().startsWith("test_data_set_")) {
                continue;
            }
            java.nio.file.Path target =
                    Files.createDirectories(into.resolve(set.getPath().getName()));
            for (FileStatus file : fs.listStatus(set.getPath())) {
                String name = file.getPath().getName();
                if (file.isDir() || !name.endsWith(".pb")) {
                    continue;
                }
                try (InputStream in = fs.open(file.getPath())) {
                    Files.copy(in, target.resolve(name));
                }
            }
            sets++;
        }
        return sets;
    }

    private static boolean ignored(String name) {
        return name.startsWith(".") || name.startsWith("_");
    }

    static boolean isModelFile(String name) {
        String lower = name.toLowerCase(Locale.ROOT);
        return !ignored(name) && (lower.endsWith(".onnx") || lower.endsWith(".ort"));
    }

    private static String stripExtension(String name) {
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }

    /** The model file of a version folder: {@code model.onnx} / {@code model.ort}, else the first by name. */
    private static FileStatus modelIn(FileSystem fs, Path dir) throws IOException {
        FileStatus[] files = fs.listStatus(dir);
        if (files == null) {
            return null;
        }
        FileStatus chosen = null;
        for (FileStatus f : files) {
            String name = f.getPath().getName();
            if (f.isDir() || !isModelFile(name)) {
                continue;
            }
            if (name.equals("model.onnx") || name.equals("model.ort")) {
                return f;
            }
            if (chosen == null || name.compareTo(chosen.getPath().getName()) < 0) {
                chosen = f;
            }
        }
        return chosen;
    }

    private static Version version(FileSystem fs, FileStatus model, String label) throws IOException {
        Path file = model.getPath();
        String sha = readSha(fs, new Path(file.getParent(), file.getName() + ".sha256"));
        if (sha == null && !file.getParent().equals(file.getParent().getParent())) {
            sha = readShaIfVersionFolder(fs, file, label);
        }
        long[] numbers = numbersIn(label);
        return new Version(
                file.toString(),
                label,
                numbers.length == 0 ? -1 : numbers[numbers.length - 1],
                model.getModificationTime(),
                model.getLen(),
                sha);
    }

    /** A plain {@code sha256} file in a version folder (not in the watched folder itself). */
    private static String readShaIfVersionFolder(FileSystem fs, Path file, String label) throws IOException {
        return file.getParent().getName().equals(label) ? readSha(fs, new Path(file.getParent(), "sha256")) : null;
    }

    private static String readSha(FileSystem fs, Path shaFile) throws IOException {
        if (!fs.exists(shaFile)) {
            return null;
        }
        byte[] bytes;
        try (InputStream in = fs.open(shaFile)) {
            bytes = in.readNBytes(MAX_SHA_FILE_BYTES);
        }
        String text = new String(bytes, StandardCharsets.UTF_8).trim();
        String first = text.isEmpty() ? "" : text.split("\\s+")[0];
        if (!SHA256.matcher(first).matches()) {
            throw new IOException("The sha256 file " + shaFile + " does not start with 64 hex digits (sha256sum's"
                    + " format: '<digest>  <file name>')");
        }
        return first.toLowerCase(Locale.ROOT);
    }
}
