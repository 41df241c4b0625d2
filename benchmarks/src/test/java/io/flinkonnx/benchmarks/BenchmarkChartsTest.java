package io.flinkonnx.benchmarks;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.awt.GraphicsEnvironment;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.HdrHistogram.Histogram;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

// XChart's tick calculation can loop on an axis it cannot label: fail instead of hanging the build.
@Timeout(value = 30, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class BenchmarkChartsTest {

    @TempDir
    Path dir;

    private static Results knownRun() {
        Results results = new Results();
        results.put("mlp_b64_operator_over_raw", 0.848);
        results.put("latency_p99_ms", 0.1436);
        results.put("latency_bound_ms", 5.052);
        results.throughput("MLP 64-256-256-10", 64, 1228223.5, 1041541.25, 136669.0);
        results.throughput("ResNet-18 224x224", 8, 66.4, 65.1, 59.0);
        results.latency(new BenchmarkCharts.LatencySeries(
                "(b) operator", new double[] {0, 50, 90, 99, 100}, new double[] {0.061, 0.11, 0.125, 0.1436, 3.2}));
        results.latency(new BenchmarkCharts.LatencySeries(
                "(a) raw, one batch", new double[] {0, 50, 99.9, 100}, new double[] {0.049, 0.052, 0.09, 0.75}));
        results.describe("2026-11-27, a test, not a run");
        return results;
    }

    @Test
    void writesBothChartsAndTheirNumbersHeadless() throws Exception {
        Results results = knownRun();

        BenchmarkCharts.Written written = BenchmarkCharts.write(results, dir);

        assertThat(written.skipped()).as("fonts: " + written.skipped()).isNull();
        assertThat(GraphicsEnvironment.isHeadless()).isTrue();
        assertThat(written.files())
                .containsExactlyInAnyOrder(
                        dir.resolve("benchmark-throughput.csv"),
                        dir.resolve("benchmark-latency.csv"),
                        dir.resolve("benchmark-results.json"),
                        dir.resolve("benchmark-throughput.png"),
                        dir.resolve("benchmark-latency.png"));
        for (String png : List.of("benchmark-throughput.png", "benchmark-latency.png")) {
            BufferedImage image = ImageIO.read(dir.resolve(png).toFile());
            assertThat(image).as(png).isNotNull();
            assertThat(image.getWidth()).isEqualTo(BenchmarkCharts.WIDTH);
            assertThat(image.getHeight()).isEqualTo(BenchmarkCharts.HEIGHT);
            assertThat(distinctColours(image)).as(png + " is drawn, not blank").isGreaterThan(20);
        }
        // The operator's bars are drawn in its colour.
        BufferedImage bars =
                ImageIO.read(dir.resolve("benchmark-throughput.png").toFile());
        assertThat(pixelsOf(bars, 0x1f77b4)).isGreaterThan(1000);

        assertThat(Files.readAllLines(dir.resolve("benchmark-throughput.csv")))
                .containsExactly(
                        "model,batch,path,records_per_second",
                        "MLP 64-256-256-10,64,raw_ort,1228223.5",
                        "MLP 64-256-256-10,64,operator,1041541.25",
                        "MLP 64-256-256-10,64,map_per_record,136669.0",
                        "ResNet-18 224x224,8,raw_ort,66.4",
                        "ResNet-18 224x224,8,operator,65.1",
                        "ResNet-18 224x224,8,map_per_record,59.0");
        assertThat(Files.readAllLines(dir.resolve("benchmark-latency.csv")))
                .containsExactly(
                        "path,percentile,latency_ms",
                        "(b) operator,0.0,0.061",
                        "(b) operator,50.0,0.11",
                        "(b) operator,90.0,0.125",
                        "(b) operator,99.0,0.1436",
                        "(b) operator,100.0,3.2",
                        "\"(a) raw, one batch\",0.0,0.049",
                        "\"(a) raw, one batch\",50.0,0.052",
                        "\"(a) raw, one batch\",99.9,0.09",
                        "\"(a) raw, one batch\",100.0,0.75");
        assertThat(Files.readString(dir.resolve("benchmark-results.json"))).isEqualTo(results.json() + "\n");
    }

    @Test
    void writesNoChartForACaseThatDidNotRun() throws Exception {
        BenchmarkCharts.Written written = BenchmarkCharts.write(new Results(), dir);

        assertThat(written.files()).containsExactly(dir.resolve("benchmark-results.json"));
    }

    @Test
    void numbersReadBackAsTheSameDouble() {
        for (double v : new double[] {0.1, 1228223.5, 1e-7, 3.0e9, 65.1, 1.0 / 3}) {
            assertThat(BenchmarkCharts.number(v)).doesNotContain("E");
            assertThat(Double.parseDouble(BenchmarkCharts.number(v))).isEqualTo(v);
        }
    }

    @Test
    void latencyPercentilesComeFromTheHistogramInMillis() {
        Histogram nanos = new Histogram(3);
        for (long us = 1; us <= 1000; us++) {
            nanos.recordValue(us * 1000);
        }

        BenchmarkCharts.LatencySeries s = BenchmarkCharts.LatencySeries.fromNanos("p", nanos);

        assertThat(s.percentiles()).containsExactly(BenchmarkCharts.PERCENTILES);
        assertThat(s.at(50)).isCloseTo(0.5, within(0.001));
        assertThat(s.at(99)).isCloseTo(0.99, within(0.001));
        assertThat(s.at(100)).isCloseTo(1.0, within(0.001));
        assertThat(s.at(0)).isCloseTo(0.001, within(0.00001));
    }

    @Test
    void percentileAxis() {
        assertThat(BenchmarkCharts.x(99)).isCloseTo(2, within(1e-9));
        assertThat(BenchmarkCharts.percentileLabel(BenchmarkCharts.x(99.9))).isEqualTo("99.9%");
        assertThat(BenchmarkCharts.percentileLabel(0)).isEqualTo("0%");
        assertThat(BenchmarkCharts.percentileLabel(BenchmarkCharts.x(100))).isEqualTo("max");
        assertThat(BenchmarkCharts.percentileLabel(1.5)).isEqualTo("96.8377%");
    }

    private static int distinctColours(BufferedImage image) {
        return (int) java.util.stream.IntStream.range(0, image.getWidth() * image.getHeight())
                .map(i -> image.getRGB(i % image.getWidth(), i / image.getWidth()))
                .distinct()
                .count();
    }

    private static long pixelsOf(BufferedImage image, int rgb) {
        long n = 0;
        for (int y = 0; y < image.getHeight(); y++) {
            for (int x = 0; x < image.getWidth(); x++) {
                if ((image.getRGB(x, y) & 0xffffff) == rgb) {
                    n++;
                }
            }
        }
        return n;
    }
}
