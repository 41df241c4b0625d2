package io.flinkonnx.flink.text.internal;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.NoSuchFileException;
import org.apache.flink.annotation.Internal;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.Path;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Reads the small files beside a text model ({@code tokenizer.json}, {@code config.json}) from where models come
 * from: a local path, {@code file:}, {@code classpath:} (the thread context class loader, Flink's user code loader
 * in a task, then this library's) or any Flink file system URI ({@code s3://}, ... with its plugin). The same
 * locations {@code ModelSource} accepts; these files are read whole (they are small) rather than copied and hashed.
 */
@Internal
public final class TextFiles {
    private static final String CLASSPATH = "classpath:";
    /** tokenizer.json of large multilingual models is ~20 MB; anything far beyond is not a tokenizer. */
    private static final int MAX_BYTES = 256 << 20;

    private static final ObjectMapper JSON = new ObjectMapper();

    private TextFiles() {}

    /** The bytes of the file at {@code uri}; fails naming the URI and the cause. */
    public static byte[] read(String uri, String what) {
        try (InputStream in = open(uri)) {
            byte[] bytes = in.readNBytes(MAX_BYTES + 1);
            if (bytes.length > MAX_BYTES) {
                throw new IllegalArgumentException(
                        "The " + what + " " + uri + " is larger than " + (MAX_BYTES >> 20) + " MiB: not a " + what);
            }
            return bytes;
        } catch (FileNotFoundException | NoSuchFileException e) {
            throw new IllegalArgumentException(
                    "The " + what + " " + uri + " does not exist (" + e.getMessage() + ")", e);
        } catch (IOException | UncheckedIOException e) {
            throw new IllegalArgumentException("The " + what + " " + uri + " cannot be read: " + e, e);
        }
    }

    /** The JSON document at {@code uri}; fails naming the URI when it is missing or not JSON. */
    public static JsonNode readJson(String uri, String what) {
        byte[] bytes = read(uri, what);
        try {
            return JSON.readTree(bytes);
        } catch (IOException e) {
            throw new IllegalArgumentException("The " + what + " " + uri + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    private static InputStream open(String uri) throws IOException {
        if (uri.startsWith(CLASSPATH)) {
            String resource = uri.substring(CLASSPATH.length());
            while (resource.startsWith("/")) {
                resource = resource.substring(1);
            }
            URL url = resource(Thread.currentThread().getContextClassLoader(), resource);
            if (url == null) {
                url = resource(TextFiles.class.getClassLoader(), resource);
            }
            if (url == null) {
                throw new FileNotFoundException("no resource '" + resource + "' on the user code or library classpath");
            }
            return url.openStream();
        }
        Path path = new Path(uri);
        FileSystem fs = path.getFileSystem();
        return fs.open(path);
    }

    private static URL resource(ClassLoader loader, String resource) {
        return loader == null ? null : loader.getResource(resource);
    }
}
