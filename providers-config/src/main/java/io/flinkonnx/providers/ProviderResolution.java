package io.flinkonnx.providers;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;

/**
 * What happened to each execution provider of a chain when a session was configured: registered, or
 * skipped with ONNX Runtime's error code and message. Published by the fallback report.
 */
@PublicEvolving
public final class ProviderResolution implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The outcome for one EP. */
    public static final class Attempt implements Serializable {
        private static final long serialVersionUID = 1L;

        private final ProviderSpec spec;
        private final boolean registered;
        private final String errorCode;
        private final String message;

        Attempt(ProviderSpec spec, boolean registered, String errorCode, String message) {
            this.spec = Objects.requireNonNull(spec, "spec");
            this.registered = registered;
            this.errorCode = errorCode;
            this.message = message;
        }

        public ExecutionProvider provider() {
            return spec.provider();
        }

        public ProviderSpec spec() {
            return spec;
        }

        public boolean isRegistered() {
            return registered;
        }

        /** ORT's error code name ({@code ORT_EP_FAIL}, ...) for a skipped EP, else null. */
        public String errorCode() {
            return errorCode;
        }

        /** ORT's message for a skipped EP, else null. */
        public String message() {
            return message;
        }

        @Override
        public String toString() {
            return registered ? spec + ": registered" : spec + ": skipped (" + errorCode + ": " + message + ")";
        }
    }

    private final ProviderChain requested;
    private final List<Attempt> attempts;

    ProviderResolution(ProviderChain requested, List<Attempt> attempts) {
        this.requested = requested;
        this.attempts = List.copyOf(attempts);
    }

    /** The chain as configured. */
    public ProviderChain requested() {
        return requested;
    }

    /** One entry per EP of the chain, in chain order. */
    public List<Attempt> attempts() {
        return attempts;
    }

    /** The EPs the session was given, in priority order (CPU last). */
    public List<ExecutionProvider> registered() {
        return attempts.stream()
                .filter(Attempt::isRegistered)
                .map(Attempt::provider)
                .collect(Collectors.toList());
    }

    /** The EPs that could not be added, with their reasons. */
    public List<Attempt> skipped() {
        return attempts.stream().filter(a -> !a.isRegistered()).collect(Collectors.toList());
    }

    /** The highest-priority EP that was registered: the one expected to take most of the graph. */
    public ExecutionProvider effective() {
        return registered().isEmpty() ? ExecutionProvider.CPU : registered().get(0);
    }

    /** Whether the first EP asked for was not registered (the session runs on a fallback). */
    public boolean fellBack() {
        return effective() != requested.preferred();
    }

    /** This resolution with {@code provider} marked skipped for {@code reason} (a failure seen at session creation). */
    public ProviderResolution withSkipped(ExecutionProvider provider, String errorCode, String reason) {
        List<Attempt> copy = new ArrayList<>();
        for (Attempt a : attempts) {
            copy.add(a.provider() == provider ? new Attempt(a.spec, false, errorCode, reason) : a);
        }
        return new ProviderResolution(requested, copy);
    }

    /**
     * This resolution with the EPs that {@code retry} (a later attempt on part of the same chain) skipped
     * marked skipped with its reasons; EPs not in {@code retry} keep their outcome.
     */
    ProviderResolution updatedBy(ProviderResolution retry) {
        List<Attempt> copy = new ArrayList<>();
        for (Attempt a : attempts) {
            Attempt later = retry.attempts.stream()
                    .filter(r -> r.provider() == a.provider())
                    .findFirst()
                    .orElse(null);
            copy.add(later != null && !later.isRegistered() ? later : a);
        }
        return new ProviderResolution(requested, copy);
    }

    @Override
    public String toString() {
        return "requested " + requested + "; "
                + attempts.stream().map(Attempt::toString).collect(Collectors.joining("; "));
    }
}
