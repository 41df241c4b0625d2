package io.flinkonnx.benchmarks;

import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import org.HdrHistogram.Histogram;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.AxesChartStyler;
import org.knowm.xchart.style.CategoryStyler;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.XYStyler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The figures of one benchmark run as charts, drawn headless with XChart into a folder ({@code
 * benchmarks/target/} when run through Maven), each beside the numbers it shows as CSV:
 *
 * <ul>
 *   <li>{@value #THROUGHPUT}{@code .png/.csv}: records per second of (a) raw ORT, (b) the batching operator
 *       and (c) a per-record map, grouped bars, one panel per model (its own scale: the MLP and ResNet-18 are
 *       four orders of magnitude apart), a group per batch size;
 *   <li>{@value #LATENCY}{@code .png/.csv}: the latency distribution as a percentile curve (HdrHistogram's
 *       plot: the x axis stretches the tail, log scales), with the bound the BENCH line holds p99 to;
 *   <li>{@value #JSON}: the BENCH object of the same run.
 * </ul>
 *
 * <p>Fed by the same {@link Results} that print the BENCH line, so the charts and the ratios come from one run.
 *
 * <p>Fonts: Java's text rendering needs at least one font that fontconfig knows. A Debian JDK pulls one in
 * (openjdk-17-jre-headless depends on libfontconfig1, whose fontconfig-config depends on fonts-dejavu-core);
 * a JDK unpacked on a bare image may have none, and then AWT fails with "Fontconfig head is null". In that case
 * the charts are drawn with Liberation Sans, which PDFBox (an XChart dependency) ships on the class path,
 * through a font configuration file of our own; where even that fails, the CSV files are still written and
 * {@link Written#skipped} says why there is no PNG.
 */
final class BenchmarkCharts {
    static final String THROUGHPUT = "benchmark-throughput";
    static final String LATENCY = "benchmark-latency";
    static final String JSON = "benchmark-results.json";
    static final int WIDTH = 1000;
    static final int HEIGHT = 560;

    /** The percentiles a latency series keeps; 100 is the maximum. */
    static final double[] PERCENTILES = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100};

    /** Where the maximum sits on the percentile axis: one decade beyond p99.99 (10^4). */
    private static final double MAX_DECADES = 5;

    private static final String FALLBACK_FONT = "org/apache/pdfbox/resources/ttf/LiberationSans-Regular.ttf";
    private static final Color RAW = new Color(0x70, 0x70, 0x70);
    private static final Color OPERATOR = new Color(0x1f, 0x77, 0xb4);
    private static final Color MAP = new Color(0xff, 0x7f, 0x0e);
    private static final Color BOUND = new Color(0xd6, 0x27, 0x28);

    /** Records per second of the three paths on one model at one batch size (the map runs one record per call). */
    record ThroughputRow(String model, int batch, double rawOrt, double operator, double perRecordMap) {}

    /** A latency distribution: {@code millis[i]} at {@code percentiles[i]} (ascending, 100 = max). */
    record LatencySeries(String path, double[] percentiles, double[] millis) {
        LatencySeries {
            if (percentiles.length != millis.length || percentiles.length == 0) {
                throw new IllegalArgumentException("One latency per percentile, at least one");
            }
        }

        /** The {@link #PERCENTILES} of a histogram of nanoseconds, in milliseconds. */
        static LatencySeries fromNanos(String path, Histogram nanos) {
            double[] millis = new double[PERCENTILES.length];
            for (int i = 0; i < PERCENTILES.length; i++) {
                long v = PERCENTILES[i] >= 100 ? nanos.getMaxValue() : nanos.getValueAtPercentile(PERCENTILES[i]);
                millis[i] = v / 1e6;
            }
            return new LatencySeries(path, PERCENTILES.clone(), millis);
        }

        double at(double percentile) {
            for (int i = 0; i < percentiles.length; i++) {
                if (percentiles[i] == percentile) {
                    return millis[i];
                }
            }
            return Double.NaN;
        }
    }

    /** What {@link #write} left in the folder, and why a chart is missing if one is. */
    record Written(List<Path> files, String skipped) {}

    private BenchmarkCharts() {}

    /**
     * Writes the CSV files and the BENCH JSON, then the PNG charts of what {@code results} holds (a chart with no
     * data is not drawn). Never throws for want of fonts or a display: {@link Written#skipped} says why a PNG is
     * missing.
     */
    static Written write(Results results, Path dir) throws IOException {
        Files.createDirectories(dir);
        List<Path> files = new ArrayList<>();
        List<ThroughputRow> throughput = results.throughput();
        List<LatencySeries> latency = results.latency();
        if (!throughput.isEmpty()) {
            files.add(writeString(dir.resolve(THROUGHPUT + ".csv"), throughputCsv(throughput)));
        }
        if (!latency.isEmpty()) {
            files.add(writeString(dir.resolve(LATENCY + ".csv"), latencyCsv(latency)));
        }
        files.add(writeString(dir.resolve(JSON), results.json() + "\n"));
        String fonts = ensureFonts();
        if (fonts != null) {
            return new Written(files, fonts);
        }
        if (!throughput.isEmpty()) {
            Path png = dir.resolve(THROUGHPUT + ".png");
            ImageIO.write(throughputImage(throughput, results.description()), "png", png.toFile());
            files.add(png);
        }
        if (!latency.isEmpty()) {
            Path png = dir.resolve(LATENCY + ".png");
            ImageIO.write(
                    latencyImage(latency, results.value("latency_bound_ms"), results.description()),
                    "png",
                    png.toFile());
            files.add(png);
        }
        return new Written(files, null);
    }

    static String throughputCsv(List<ThroughputRow> rows) {
        StringBuilder sb = new StringBuilder("model,batch,path,records_per_second\n");
        for (ThroughputRow r : rows) {
            String prefix = csv(r.model()) + "," + r.batch() + ",";
            sb.append(prefix).append("raw_ort,").append(number(r.rawOrt())).append('\n');
            sb.append(prefix).append("operator,").append(number(r.operator())).append('\n');
            sb.append(prefix)
                    .append("map_per_record,")
                    .append(number(r.perRecordMap()))
                    .append('\n');
        }
        return sb.toString();
    }

    static String latencyCsv(List<LatencySeries> series) {
        StringBuilder sb = new StringBuilder("path,percentile,latency_ms\n");
        for (LatencySeries s : series) {
            for (int i = 0; i < s.percentiles().length; i++) {
                sb.append(csv(s.path()))
                        .append(',')
                        .append(number(s.percentiles()[i]))
                        .append(',')
                        .append(number(s.millis()[i]))
                        .append('\n');
            }
        }
        return sb.toString();
    }

    /** The shortest decimal that reads back as the same double, never in exponent form. */
    static String number(double v) {
        return BigDecimal.valueOf(v).toPlainString();
    }

    private static String csv(String s) {
        return s.contains(",") || s.contains("\"") || s.contains("\n") ? '"' + s.replace("\"", "\"\"") + '"' : s;
    }

    private static Path writeString(Path file, String text) throws IOException {
        Files.writeString(file, text, StandardCharsets.UTF_8);
        return file;
    }

    // ---------------------------------------------------------------------------------------------- throughput

    static BufferedImage throughputImage(List<ThroughputRow> rows, String description) {
        Map<String, List<ThroughputRow>> byModel = new LinkedHashMap<>();
        rows.forEach(
                r -> byModel.computeIfAbsent(r.model(), k -> new ArrayList<>()).add(r));
        List<Chart<?, ?>> panels = new ArrayList<>();
        for (Map.Entry<String, List<ThroughputRow>> e : byModel.entrySet()) {
            List<ThroughputRow> model = e.getValue();
            List<String> batches = new ArrayList<>();
            List<Double> raw = new ArrayList<>();
            List<Double> op = new ArrayList<>();
            List<Double> map = new ArrayList<>();
            StringBuilder ratios = new StringBuilder();
            for (ThroughputRow r : model) {
                batches.add("batch " + r.batch());
                raw.add(r.rawOrt());
                op.add(r.operator());
                map.add(r.perRecordMap());
                ratios.append(String.format(
                        Locale.ROOT,
                        "%s(b)/(a) %.2f, (b)/(c) %.1f",
                        ratios.length() == 0 ? "" : "; ",
                        r.operator() / r.rawOrt(),
                        r.operator() / r.perRecordMap()));
            }
            CategoryChart chart = new CategoryChartBuilder()
                    .title(e.getKey() + ": " + ratios)
                    .yAxisTitle("records/s (higher is better)")
                    .build();
            CategoryStyler styler = chart.getStyler();
            common(styler);
            styler.setLegendLayout(Styler.LegendLayout.Horizontal);
            styler.setYAxisMin(0.0);
            styler.setYAxisDecimalPattern("#,###");
            styler.setSeriesColors(new Color[] {RAW, OPERATOR, MAP});
            styler.setLabelsVisible(true);
            styler.setLabelsPosition(0.93);
            styler.setLabelsFont(font(Font.PLAIN, 11));
            chart.addSeries("(a) raw ORT", batches, raw);
            chart.addSeries("(b) operator", batches, op);
            chart.addSeries("(c) map per record", batches, map);
            panels.add(chart);
        }
        return compose(
                "Throughput: raw ONNX Runtime vs the batching operator vs a per-record map (one slot, one ORT"
                        + " thread)",
                description,
                panels);
    }

    private static String trim(String decimal) {
        return decimal.contains(".") ? decimal.replaceAll("0+$", "").replaceAll("\\.$", "") : decimal;
    }

    // ------------------------------------------------------------------------------------------------- latency

    static BufferedImage latencyImage(List<LatencySeries> series, Double boundMillis, String description) {
        XYChart chart = new XYChartBuilder()
                .title("Latency distribution (lower is better; the x axis stretches the tail)")
                .xAxisTitle("percentile")
                .yAxisTitle("latency, ms (log)")
                .build();
        XYStyler styler = chart.getStyler();
        common(styler);
        styler.setLegendLayout(Styler.LegendLayout.Vertical);
        // The x axis is linear in log10(1 / (1 - p)), a tick per decade: XChart's tick labels callback loops on
        // a log axis, and on any axis until its labels are unique.
        styler.setXAxisTickMarkSpacingHint((WIDTH - 120) / 5);
        styler.setXAxisMin(0.0);
        styler.setXAxisMax(x(100));
        styler.setxAxisTickLabelsFormattingFunction(BenchmarkCharts::percentileLabel);
        styler.setYAxisLogarithmic(true);
        styler.setYAxisLogarithmicDecadeOnly(true);
        styler.setYAxisDecimalPattern("0.####");
        styler.setSeriesColors(new Color[] {OPERATOR, RAW, MAP});
        double min = Double.MAX_VALUE;
        double max = 0;
        for (LatencySeries s : series) {
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (int i = 0; i < s.percentiles().length; i++) {
                double y = Math.max(s.millis()[i], 1e-4); // a log axis has no 0
                xs.add(x(s.percentiles()[i]));
                ys.add(y);
                min = Math.min(min, y);
                max = Math.max(max, y);
            }
            String name = String.format(
                    Locale.ROOT,
                    "%s: p50 %s, p99 %s, max %s ms",
                    s.path(),
                    millisText(s.at(50)),
                    millisText(s.at(99)),
                    millisText(s.at(100)));
            XYSeries line = chart.addSeries(name, xs, ys);
            line.setMarker(SeriesMarkers.CIRCLE);
        }
        if (boundMillis != null) {
            XYSeries bound = chart.addSeries(
                    "bound p99 is held to: max delay + one batch's compute, " + millisText(boundMillis) + " ms",
                    List.of(x(0), x(100)),
                    List.of(boundMillis, boundMillis));
            bound.setMarker(SeriesMarkers.NONE);
            bound.setLineColor(BOUND);
            bound.setLineStyle(new java.awt.BasicStroke(
                    1.5f,
                    java.awt.BasicStroke.CAP_BUTT,
                    java.awt.BasicStroke.JOIN_MITER,
                    10f,
                    new float[] {6f, 4f},
                    0f));
            max = Math.max(max, boundMillis);
        }
        styler.setYAxisMin(Math.pow(10, Math.floor(Math.log10(min))));
        styler.setYAxisMax(Math.pow(10, Math.ceil(Math.log10(max * 1.01))));
        return compose(null, description, List.of(chart));
    }

    /** Where a percentile sits on the x axis: log10(1 / (1 - p)), the maximum one decade beyond p99.99. */
    static double x(double percentile) {
        return percentile >= 100 ? MAX_DECADES : Math.log10(1 / (1 - percentile / 100));
    }

    /** 0 -> "0%", 1 -> "90%", 2 -> "99%", 2.5 -> "99.6838%", ..., the last -> "max": every label unique. */
    static String percentileLabel(double x) {
        if (x < -1e-9 || x > MAX_DECADES + 1e-9) {
            return "x=" + x; // off the plot, never drawn, but XChart retries until every label is unique
        }
        if (x >= MAX_DECADES - 1e-9) {
            return "max";
        }
        double p = (1 - Math.pow(10, -x)) * 100;
        return trim(String.format(Locale.ROOT, "%.4f", p)) + "%";
    }

    private static String millisText(double ms) {
        return Double.isNaN(ms)
                ? "-"
                : ms >= 10 ? String.format(Locale.ROOT, "%.1f", ms) : trim(String.format(Locale.ROOT, "%.3f", ms));
    }

    // ------------------------------------------------------------------------------------------------- drawing

    private static void common(AxesChartStyler styler) {
        styler.setChartBackgroundColor(Color.WHITE);
        styler.setPlotBackgroundColor(Color.WHITE);
        styler.setPlotGridLinesColor(new Color(0xdd, 0xdd, 0xdd));
        styler.setPlotBorderVisible(false);
        styler.setLegendBorderColor(Color.WHITE);
        styler.setLegendPosition(Styler.LegendPosition.OutsideS);
        styler.setChartTitleBoxVisible(false);
        styler.setChartTitleFont(font(Font.BOLD, 13));
        styler.setLegendFont(font(Font.PLAIN, 12));
        styler.setAxisTitleFont(font(Font.PLAIN, 12));
        styler.setAxisTickLabelsFont(font(Font.PLAIN, 11));
        styler.setAntiAlias(true);
    }

    private static Font font(int style, int size) {
        return new Font(Font.SANS_SERIF, style, size);
    }

    /** The panels side by side under a title, the run's description as a caption at the foot. */
    private static BufferedImage compose(String title, String caption, List<Chart<?, ?>> panels) {
        int top = title == null ? 8 : 34;
        int bottom = 28;
        BufferedImage image = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, WIDTH, HEIGHT);
            g.setColor(Color.BLACK);
            if (title != null) {
                g.setFont(font(Font.BOLD, 15));
                g.drawString(title, 12, 22);
            }
            int each = WIDTH / panels.size();
            for (int i = 0; i < panels.size(); i++) {
                Graphics2D panel = (Graphics2D) g.create(i * each, top, each, HEIGHT - top - bottom);
                try {
                    panels.get(i).paint(panel, each, HEIGHT - top - bottom);
                } finally {
                    panel.dispose();
                }
            }
            if (caption != null) {
                g.setColor(new Color(0x55, 0x55, 0x55));
                g.setFont(font(Font.PLAIN, 11));
                g.drawString(caption, 12, HEIGHT - 10);
            }
        } finally {
            g.dispose();
        }
        return image;
    }

    // --------------------------------------------------------------------------------------------------- fonts

    private static String fontProblem;
    private static boolean fontsChecked;

    /**
     * Null when text can be drawn (with the system's fonts, or else with the fallback), otherwise why not. Runs
     * once per JVM; must come before anything else draws text, since the fallback is read when Java's font
     * manager starts.
     */
    static synchronized String ensureFonts() {
        if (fontsChecked) {
            return fontProblem;
        }
        fontsChecked = true;
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
        Throwable first = probeFonts();
        if (first == null) {
            return fontProblem = null;
        }
        try {
            useFallbackFont();
        } catch (IOException | UncheckedIOException e) {
            return fontProblem = "no font to draw text with (" + first + ") and no fallback: " + e;
        }
        Throwable second = probeFonts();
        if (second != null) {
            return fontProblem = "no font to draw text with: " + first + "; with Liberation Sans: " + second;
        }
        System.out.println("  (charts: no system font; drawn with Liberation Sans from PDFBox's jar)");
        return fontProblem = null;
    }

    private static Throwable probeFonts() {
        try {
            BufferedImage probe = new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = probe.createGraphics();
            try {
                g.setFont(font(Font.PLAIN, 12));
                g.getFontMetrics().stringWidth("0.85");
                g.drawString("0", 0, 8);
            } finally {
                g.dispose();
            }
            return null;
        } catch (Throwable t) { // InternalError "Fontconfig head is null", UnsatisfiedLinkError, AWTError...
            return t;
        }
    }

    /**
     * Java reads {@code sun.awt.fontconfig} (a font configuration properties file, see the JDK's "Font
     * Configuration Files") when its font manager starts, which it retries after a failed start: name
     * Liberation Sans for every logical font.
     */
    private static void useFallbackFont() throws IOException {
        Path dir = Files.createTempDirectory("flink-onnx-bench-fonts");
        Path ttf = dir.resolve("LiberationSans-Regular.ttf");
        try (InputStream in = BenchmarkCharts.class.getClassLoader().getResourceAsStream(FALLBACK_FONT)) {
            if (in == null) {
                throw new IOException(FALLBACK_FONT + " is not on the class path");
            }
            Files.copy(in, ttf, StandardCopyOption.REPLACE_EXISTING);
        }
        String xlfd = "-liberation-sans-medium-r-normal--*-%d-*-*-p-*-iso8859-1";
        Path properties = dir.resolve("fontconfig.properties");
        Files.writeString(
                properties,
                String.join(
                        "\n",
                        "version=1",
                        "sequence.allfonts=latin-1",
                        "allfonts.latin-1=" + xlfd,
                        "filename." + xlfd.replace(" ", "_") + "=" + ttf.toAbsolutePath(),
                        "awtfontpath.latin-1=" + dir.toAbsolutePath(),
                        ""),
                StandardCharsets.ISO_8859_1);
        System.setProperty("sun.awt.fontconfig", properties.toAbsolutePath().toString());
    }
}
