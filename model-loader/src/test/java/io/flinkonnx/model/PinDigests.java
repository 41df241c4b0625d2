package io.flinkonnx.model;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/** The pin of a model as {@link ModelSource#withSha256} documents it, computed independently of the library. */
final class PinDigests {
    private PinDigests() {}

    /** sha256 of the model file, then one {@code <sha256>  <location>} line per external file, sorted by location. */
    static String documentedPin(Path modelFile, String... externalLocations) throws IOException {
        String modelDigest = ModelSource.sha256Hex(Files.readAllBytes(modelFile));
        if (externalLocations.length == 0) {
            return modelDigest;
        }
        String[] sorted = externalLocations.clone();
        Arrays.sort(sorted);
        StringBuilder manifest = new StringBuilder(modelDigest).append('\n');
        for (String location : sorted) {
            Path file = modelFile.toAbsolutePath().getParent().resolve(location);
            manifest.append(ModelSource.sha256Hex(Files.readAllBytes(file)))
                    .append("  ")
                    .append(location)
                    .append('\n');
        }
        return ModelSource.sha256Hex(manifest.toString().getBytes(StandardCharsets.UTF_8));
    }

    static String sha256Of(Path file) throws IOException {
        return ModelSource.sha256Hex(Files.readAllBytes(file));
    }
}
