package io.flinkonnx.model;

import java.io.Serializable;
import java.util.Map;
import java.util.Objects;
import org.apache.flink.annotation.Internal;

/**
 * What the runtime that will execute a model can read: its highest IR version and its highest opset per
 * operator domain. Domains not listed are not checked (custom domains are the runtime's business).
 */
@Internal
public final class RuntimeLimits implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String runtimeName;
    private final long maxIrVersion;
    private final Map<String, Long> maxOpsetByDomain;

    /**
     * @param runtimeName for messages, e.g. {@code "ONNX Runtime 1.24.2"}
     * @param maxIrVersion highest {@code ModelProto.ir_version} the runtime reads
     * @param maxOpsetByDomain highest opset per domain; use {@code ""} for the default ONNX domain
     */
    public RuntimeLimits(String runtimeName, long maxIrVersion, Map<String, Long> maxOpsetByDomain) {
        this.runtimeName = Objects.requireNonNull(runtimeName, "runtimeName");
        this.maxIrVersion = maxIrVersion;
        this.maxOpsetByDomain = Map.copyOf(maxOpsetByDomain);
    }

    public String runtimeName() {
        return runtimeName;
    }

    public long maxIrVersion() {
        return maxIrVersion;
    }

    /** The highest opset of {@code domain} ({@code ""} and {@code "ai.onnx"} are the same), or -1 if unchecked. */
    public long maxOpset(String domain) {
        return maxOpsetByDomain.getOrDefault(normalizeDomain(domain), -1L);
    }

    static String normalizeDomain(String domain) {
        return domain == null || domain.equals("ai.onnx") ? "" : domain;
    }

    @Override
    public String toString() {
        return runtimeName + " (IR <= " + maxIrVersion + ", opsets " + maxOpsetByDomain + ")";
    }
}
