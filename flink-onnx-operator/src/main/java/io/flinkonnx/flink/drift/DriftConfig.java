package io.flinkonnx.flink.drift;

import static org.apache.flink.util.Preconditions.checkArgument;

import io.flinkonnx.flink.DriftTolerance;
import io.flinkonnx.flink.ReferenceExtractor;
import io.flinkonnx.model.ModelSource;
import java.io.Serializable;
import java.time.Duration;
import org.apache.flink.annotation.Internal;

/** What drift is measured against, how often, and with which tolerance. Immutable. */
@Internal
public final class DriftConfig<IN> implements Serializable {
    private static final long serialVersionUID = 1L;

    public static <IN> DriftConfig<IN> none() {
        return new DriftConfig<>(null, 0, null, null, null, 0, DriftTolerance.defaults());
    }

    public final ModelSource referenceModel;
    public final double shadowFraction;
    public final String goldenVectors;
    public final Duration goldenInterval;
    public final ReferenceExtractor<IN> recordReferences;
    public final double recordFraction;
    public final DriftTolerance tolerance;

    private DriftConfig(
            ModelSource referenceModel,
            double shadowFraction,
            String goldenVectors,
            Duration goldenInterval,
            ReferenceExtractor<IN> recordReferences,
            double recordFraction,
            DriftTolerance tolerance) {
        this.referenceModel = referenceModel;
        this.shadowFraction = shadowFraction;
        this.goldenVectors = goldenVectors;
        this.goldenInterval = goldenInterval;
        this.recordReferences = recordReferences;
        this.recordFraction = recordFraction;
        this.tolerance = tolerance;
    }

    public boolean enabled() {
        return referenceModel != null || goldenVectors != null || recordReferences != null;
    }

    public DriftConfig<IN> withShadow(ModelSource model, double fraction) {
        checkFraction(fraction);
        return new DriftConfig<>(
                model, fraction, goldenVectors, goldenInterval, recordReferences, recordFraction, tolerance);
    }

    public DriftConfig<IN> withGolden(String folder, Duration interval) {
        checkArgument(folder != null && !folder.isBlank(), "golden vectors folder must be given");
        checkArgument(
                interval != null && !interval.isNegative() && !interval.isZero(),
                "golden vectors interval must be > 0, got %s",
                interval);
        return new DriftConfig<>(
                referenceModel, shadowFraction, folder, interval, recordReferences, recordFraction, tolerance);
    }

    public DriftConfig<IN> withRecords(ReferenceExtractor<IN> extractor, double fraction) {
        checkFraction(fraction);
        return new DriftConfig<>(
                referenceModel, shadowFraction, goldenVectors, goldenInterval, extractor, fraction, tolerance);
    }

    public DriftConfig<IN> withTolerance(DriftTolerance t) {
        return new DriftConfig<>(
                referenceModel, shadowFraction, goldenVectors, goldenInterval, recordReferences, recordFraction, t);
    }

    private static void checkFraction(double fraction) {
        checkArgument(fraction > 0 && fraction <= 1, "sample fraction must be in (0, 1], got %s", fraction);
    }
}
