package io.flinkonnx.providers;

import java.lang.reflect.InvocationTargetException;
import java.util.Locale;
import org.apache.flink.annotation.Internal;

/**
 * Where the native libraries of custom operators come from. The ONNX Runtime Extensions are an optional
 * dependency: they are looked up by name at session creation, so that users who never ask for them need not
 * have the jar (18 MB of natives), and those who ask without it get a message naming the artifact.
 */
@Internal
public final class CustomOpLibraries {
    /** The Maven coordinates of the ONNX Runtime Extensions this library is built and tested with. */
    public static final String ONNXRUNTIME_EXTENSIONS_ARTIFACT =
            "com.microsoft.onnxruntime:onnxruntime-extensions:0.13.0";

    private static final String PACKAGE_CLASS = "ai.onnxruntime.extensions.OrtxPackage";

    private CustomOpLibraries() {}

    /**
     * The path of the ONNX Runtime Extensions' native library, extracted from its jar (once per class loader).
     *
     * @return the file to pass to {@code SessionOptions.registerCustomOpLibrary}
     * @throws IllegalStateException when the jar is not on the classpath, or has no native library for this
     *     platform
     */
    public static String onnxRuntimeExtensions() {
        Class<?> packageClass;
        try {
            packageClass = load();
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("ONNX Runtime Extensions were asked for (onnxRuntimeExtensions(true), SQL"
                    + " 'extensions' = 'true') but " + ONNXRUNTIME_EXTENSIONS_ARTIFACT + " is not on the classpath"
                    + " (" + PACKAGE_CLASS + " not found): add it as a dependency of the job, or put its jar in"
                    + " Flink's lib/ next to onnxruntime's");
        } catch (LinkageError e) {
            throw nativeMissing(e);
        }
        try {
            return (String) packageClass.getMethod("getLibraryPath").invoke(null);
        } catch (InvocationTargetException e) {
            throw nativeMissing(e.getCause());
        } catch (LinkageError e) {
            throw nativeMissing(e);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(
                    PACKAGE_CLASS + ".getLibraryPath() is not callable: use " + ONNXRUNTIME_EXTENSIONS_ARTIFACT, e);
        }
    }

    /**
     * The extensions' entry class: beside this library first (both in Flink's lib/, or both in the job jar), else
     * from the job's class loader (this library in lib/, the extensions in the job jar).
     */
    private static Class<?> load() throws ClassNotFoundException {
        try {
            return Class.forName(PACKAGE_CLASS, true, CustomOpLibraries.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            ClassLoader context = Thread.currentThread().getContextClassLoader();
            if (context == null || context == CustomOpLibraries.class.getClassLoader()) {
                throw e;
            }
            return Class.forName(PACKAGE_CLASS, true, context);
        }
    }

    private static IllegalStateException nativeMissing(Throwable cause) {
        Throwable root = cause;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String platform =
                System.getProperty("os.name", "?").toLowerCase(Locale.ROOT) + "/" + System.getProperty("os.arch", "?");
        return new IllegalStateException(
                "The ONNX Runtime Extensions could not load their native library on "
                        + platform + " (" + root + "); " + ONNXRUNTIME_EXTENSIONS_ARTIFACT
                        + " ships natives for linux-x64,"
                        + " osx-x64 and win-x64 only",
                cause);
    }
}
