package io.flinkonnx.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The metric names a PromQL expression selects, by a tokenizer that knows what else an identifier can be:
 * a function or aggregation (followed by {@code (}, or by {@code by}/{@code without}), a keyword ({@code by}, {@code without}, {@code on},
 * {@code ignoring}, {@code group_left}/{@code group_right}: their parenthesized label lists are skipped; {@code
 * bool}, {@code and}, {@code or}, {@code unless}, {@code offset}), a label inside {@code {...}} matchers, a range or
 * subquery in {@code [...]}, a string, a number or duration, or a Grafana variable ({@code $name}, {@code ${name}}).
 * What remains is a metric name. Also the expressions of a Grafana dashboard: every panel target's {@code expr}
 * (panels nested in rows included) and every query variable ({@code label_values(selector, label)} reads the
 * selector).
 */
final class PromQl {
    private static final Set<String> KEYWORDS = Set.of(
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
            "bool",
            "and",
            "or",
            "unless",
            "offset",
            "Inf",
            "NaN",
            "inf",
            "nan");
    private static final Set<String> LABEL_LIST_KEYWORDS =
            Set.of("by", "without", "on", "ignoring", "group_left", "group_right");
    private static final Pattern LABEL_VALUES =
            Pattern.compile("^\\s*label_values\\((.*),\\s*[A-Za-z_][A-Za-z0-9_]*\\s*\\)\\s*$");

    private PromQl() {}

    /** A metric name and the labels its selector requires equal to a fixed value ({@code quantile="0.99"}). */
    record Selector(String name, Map<String, String> equalLabels) {}

    private static final Pattern EQUAL_MATCHER = Pattern.compile("([A-Za-z_][A-Za-z0-9_]*)\\s*=\\s*\"([^\"$]*)\"");

    /** The metric names {@code expr} selects, in order of appearance. */
    static Set<String> metricNames(String expr) {
        Set<String> names = new LinkedHashSet<>();
        selectors(expr).forEach(s -> names.add(s.name()));
        return names;
    }

    /**
     * The selectors of {@code expr}, each with its {@code label="value"} matchers (not {@code !=}, {@code =~},
     * {@code !~}, nor values holding a Grafana variable).
     */
    static List<Selector> selectors(String expr) {
        List<Selector> selectors = new ArrayList<>();
        int i = 0;
        int n = expr.length();
        while (i < n) {
            char c = expr.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
            } else if (c == '"' || c == '\'' || c == '`') {
                i = skipString(expr, i);
            } else if (c == '{') {
                i = skipTo(expr, i, '}');
            } else if (c == '[') {
                i = skipTo(expr, i, ']');
            } else if (c == '$') {
                i++;
                if (i < n && expr.charAt(i) == '{') {
                    i = skipTo(expr, i, '}');
                } else {
                    while (i < n && isIdentifierPart(expr.charAt(i))) {
                        i++;
                    }
                }
            } else if (Character.isDigit(c) || (c == '.' && i + 1 < n && Character.isDigit(expr.charAt(i + 1)))) {
                i = skipNumber(expr, i);
            } else if (isIdentifierStart(c)) {
                int start = i;
                while (i < n && isIdentifierPart(expr.charAt(i))) {
                    i++;
                }
                String word = expr.substring(start, i);
                int next = i;
                while (next < n && Character.isWhitespace(expr.charAt(next))) {
                    next++;
                }
                // a function or aggregation: sum(...), and also sum by (l) (...) / sum without (l) (...)
                boolean call = next < n && expr.charAt(next) == '('
                        || startsWithWord(expr, next, "by")
                        || startsWithWord(expr, next, "without");
                if (LABEL_LIST_KEYWORDS.contains(word)) {
                    if (call) {
                        i = skipTo(expr, next, ')');
                    }
                } else if (!call && !KEYWORDS.contains(word)) {
                    Map<String, String> equal = new LinkedHashMap<>();
                    if (next < n && expr.charAt(next) == '{') {
                        int end = skipTo(expr, next, '}');
                        Matcher m = EQUAL_MATCHER.matcher(expr.substring(next + 1, end - 1));
                        while (m.find()) {
                            int op = m.start() + m.group(1).length();
                            String before = expr.substring(next + 1, end - 1).substring(op, m.start(2));
                            if (!before.contains("!") && !before.contains("~")) {
                                equal.put(m.group(1), m.group(2));
                            }
                        }
                        i = end;
                    }
                    selectors.add(new Selector(word, equal));
                }
            } else {
                i++; // operators, parentheses, commas
            }
        }
        return selectors;
    }

    /** Every PromQL expression of a Grafana dashboard: panel targets (rows' panels too) and query variables. */
    static List<String> dashboardExpressions(JsonNode dashboard) {
        List<String> exprs = new ArrayList<>();
        collectPanels(dashboard.path("panels"), exprs);
        for (JsonNode variable : dashboard.path("templating").path("list")) {
            if (!"query".equals(variable.path("type").asText())) {
                continue;
            }
            JsonNode query = variable.path("query");
            String q = query.isObject() ? query.path("query").asText() : query.asText();
            Matcher m = LABEL_VALUES.matcher(q);
            exprs.add(m.matches() ? m.group(1) : q);
        }
        return exprs;
    }

    /** The metric names every expression of the dashboard at {@code path} selects. */
    static Set<String> dashboardMetricNames(Path path) throws IOException {
        Set<String> names = new LinkedHashSet<>();
        dashboardSelectors(path).forEach(s -> names.add(s.name()));
        return names;
    }

    /** The selectors of every expression of the dashboard at {@code path}. */
    static List<Selector> dashboardSelectors(Path path) throws IOException {
        List<Selector> selectors = new ArrayList<>();
        for (String expr : dashboardExpressions(new ObjectMapper().readTree(path.toFile()))) {
            selectors.addAll(selectors(expr));
        }
        return selectors;
    }

    private static void collectPanels(JsonNode panels, List<String> exprs) {
        for (JsonNode panel : panels) {
            for (JsonNode target : panel.path("targets")) {
                if (target.hasNonNull("expr")) {
                    exprs.add(target.get("expr").asText());
                }
            }
            collectPanels(panel.path("panels"), exprs);
        }
    }

    private static boolean startsWithWord(String s, int at, String word) {
        int end = at + word.length();
        return s.startsWith(word, at) && (end == s.length() || !isIdentifierPart(s.charAt(end)));
    }

    private static boolean isIdentifierStart(char c) {
        return Character.isLetter(c) || c == '_' || c == ':';
    }

    private static boolean isIdentifierPart(char c) {
        return Character.isLetterOrDigit(c) || c == '_' || c == ':';
    }

    private static int skipString(String s, int i) {
        char quote = s.charAt(i++);
        while (i < s.length() && s.charAt(i) != quote) {
            i += s.charAt(i) == '\\' && quote != '`' ? 2 : 1;
        }
        return i + 1;
    }

    /** From the opening bracket at {@code i} to past its {@code close}, skipping strings inside. */
    private static int skipTo(String s, int i, char close) {
        i++;
        while (i < s.length() && s.charAt(i) != close) {
            char c = s.charAt(i);
            i = c == '"' || c == '\'' || c == '`' ? skipString(s, i) : i + 1;
        }
        if (i >= s.length()) {
            throw new IllegalArgumentException("Unbalanced '" + close + "' in: " + s);
        }
        return i + 1;
    }

    /** A number ({@code 0.99}, {@code 1e-3}, {@code 0x1f}) or a duration ({@code 5m}, {@code 1h30m}). */
    private static int skipNumber(String s, int i) {
        while (i < s.length()) {
            char c = s.charAt(i);
            boolean exponentSign = (c == '+' || c == '-') && (s.charAt(i - 1) == 'e' || s.charAt(i - 1) == 'E');
            if (!(Character.isLetterOrDigit(c) || c == '.' || exponentSign)) {
                break;
            }
            i++;
        }
        return i;
    }
}
