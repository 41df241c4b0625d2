package io.flinkonnx.examples;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The demo's synthetic card transactions and their 8 model features. The fraud model was trained on
 * transactions drawn from the same generator (see FraudModelTrainer in the tests).
 */
public final class FraudFeatures {
    public static final int WIDTH = 8;
    public static final String[] NAMES = {
        "log_amount", "hour_sin", "hour_cos", "foreign", "card_present", "merchant_risk", "txns_24h", "log_distance_km"
    };

    private FraudFeatures() {}

    /** One transaction's features, drawn from {@code random}. */
    public static float[] draw(SplittableRandom random) {
        double amount = Math.exp(3 + 1.2 * gaussian(random));
        int hour = random.nextInt(24);
        double foreign = random.nextDouble() < 0.1 ? 1 : 0;
        double present = random.nextDouble() < 0.7 ? 1 : 0;
        double risk = Math.pow(random.nextDouble(), 3);
        double txns = Math.min(30, -Math.log(1 - random.nextDouble()) * 3);
        double distance = Math.exp(2 + 1.5 * gaussian(random));
        return new float[] {
            (float) (Math.log1p(amount) / 10),
            (float) Math.sin(2 * Math.PI * hour / 24),
            (float) Math.cos(2 * Math.PI * hour / 24),
            (float) foreign,
            (float) present,
            (float) risk,
            (float) (txns / 10),
            (float) (Math.log1p(distance) / 10)
        };
    }

    /** The ground truth the synthetic labels follow: riskier when large, foreign, card-absent, at night, far. */
    public static double fraudLogit(float[] f) {
        return -3.2
                + 6 * (f[0] - 0.4)
                + 1.5 * f[3]
                - 1.6 * f[4]
                + 3.0 * f[5]
                + 0.8 * f[6]
                + 2.5 * (f[7] - 0.3)
                + 1.2 * Math.max(0, f[2]);
    }

    /** A transaction as the demo's JSON message. */
    public static String toJson(String id, float[] features) {
        StringBuilder sb = new StringBuilder("{\"id\":\"").append(id).append("\",\"features\":[");
        for (int i = 0; i < features.length; i++) {
            sb.append(i == 0 ? "" : ",").append(String.format(Locale.ROOT, "%.6f", features[i]));
        }
        return sb.append("]}").toString();
    }

    private static double gaussian(SplittableRandom r) {
        double u = 1 - r.nextDouble();
        double v = r.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
}
