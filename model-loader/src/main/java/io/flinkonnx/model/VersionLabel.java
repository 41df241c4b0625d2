package io.flinkonnx.model;

import java.util.regex.Pattern;
import org.apache.flink.annotation.Internal;

/**
 * The one rule that names a model version from its URI when nothing else names it. It lives here, below every
 * package of the runtime, so that the engine (the label a runner serves by default), the version watcher (the
 * labels of a folder's versions) and the multi-model operator (a model reference without a version) all read
 * the same rule, and none of them has to depend on another for it.
 */
@Internal
public final class VersionLabel {
    /** A folder name that is a version: digits, optionally after a {@code v}, with {@code .}, {@code _} or {@code -}. */
    private static final Pattern VERSION_FOLDER = Pattern.compile("[vV]?\\d+([._-]\\d+)*");

    private VersionLabel() {}

    /**
     * The version label of a model URI: its folder's name when that is a version ({@code v7/model.onnx},
     * {@code 2.1.0/fraud.onnx}: digits, optionally after a {@code v}, with {@code .}, {@code _} or {@code -}
     * between them) or the file is just {@code model.onnx}, else the file name without its extension
     * ({@code fraud-7}, {@code fraud-DE}).
     */
    public static String ofUri(String modelUri) {
        String path = modelUri.replace('\\', '/');
        int slash = path.lastIndexOf('/');
        String file = path.substring(slash + 1);
        int dot = file.lastIndexOf('.');
        file = dot > 0 ? file.substring(0, dot) : file;
        if (slash <= 0) {
            return file;
        }
        String parentPath = path.substring(0, slash);
        String parent = parentPath.substring(parentPath.lastIndexOf('/') + 1);
        // model.onnx says nothing: its folder names it (models/fraud-DE/model.onnx)
        return VERSION_FOLDER.matcher(parent).matches() || file.equals("model") ? parent : file;
    }
}
