package io.flinkonnx.model;

import java.nio.file.Path;

/**
 * {@code FetchInSmallHeap MODEL TEMP_ROOT}: fetches MODEL (copy, hash, parse, checks) and prints its sha256 and
 * signature. {@link LargeModelFetchTest} runs it in a JVM whose heap is smaller than the model.
 */
public final class FetchInSmallHeap {
    private FetchInSmallHeap() {}

    public static void main(String[] args) {
        try (LocalModel model = ModelSource.of(args[0]).fetch(Path.of(args[1]))) {
            System.out.println("sha256 " + model.sha256());
            System.out.println("signature " + model.signature().orElseThrow().inputs() + " -> "
                    + model.signature().orElseThrow().outputs());
            System.out.println("max heap " + Runtime.getRuntime().maxMemory());
        }
    }
}
