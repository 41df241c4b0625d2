package io.flinkonnx.flink.session;

import io.flinkonnx.providers.ProviderChain;
import io.flinkonnx.providers.SessionSettings;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.annotation.Internal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The sessions open in this process, one per (task slot, model digest, providers, settings), reference
 * counted: the first user loads, the last one's release closes. Each open and close is also counted in
 * {@link TaskManagerSessions}, across the class loaders of every job in the process.
 *
 * <p>Loading happens under a per-key lock, so slots load their models in parallel while two operators of
 * one slot wait for a single load.
 */
@Internal
public final class SessionRegistry {
    private static final Logger LOG = LoggerFactory.getLogger(SessionRegistry.class);

    public static final SessionRegistry INSTANCE = new SessionRegistry();

    /** What makes two operators share a session. */
    public static final class Key {
        final String slot;
        final String modelSha256;
        final String providers;
        final String settings;

        public Key(String slot, String modelSha256, ProviderChain providers, SessionSettings settings) {
            this.slot = Objects.requireNonNull(slot, "slot");
            this.modelSha256 = Objects.requireNonNull(modelSha256, "modelSha256");
            this.providers = providers.toString();
            this.settings = settings.toString();
        }

        @Override
        public boolean equals(Object o) {
            if (!(o instanceof Key)) {
                return false;
            }
            Key k = (Key) o;
            return slot.equals(k.slot)
                    && modelSha256.equals(k.modelSha256)
                    && providers.equals(k.providers)
                    && settings.equals(k.settings);
        }

        @Override
        public int hashCode() {
            return Objects.hash(slot, modelSha256, providers, settings);
        }

        @Override
        public String toString() {
            return "slot " + slot + ", model sha256 " + modelSha256.substring(0, 12) + ", providers " + providers;
        }
    }

    /** Loads a session for a key, on first use. */
    @FunctionalInterface
    public interface Loader {
        SharedSession load(Key key) throws Exception;
    }

    private static final class Holder {
        int references;
        SharedSession session;
    }

    private final Map<Key, Holder> holders = new HashMap<>();
    private final AtomicLong created = new AtomicLong();
    private final AtomicLong closed = new AtomicLong();

    /** The shared session for {@code key}, loading it if this is its first user. Pair with {@link #release}. */
    public SharedSession acquire(Key key, Loader loader) throws Exception {
        Holder holder;
        synchronized (this) {
            holder = holders.computeIfAbsent(key, k -> new Holder());
            holder.references++;
        }
        try {
            synchronized (holder) {
                if (holder.session == null) {
                    holder.session = loader.load(key);
                    created.incrementAndGet();
                    TaskManagerSessions.opened();
                    LOG.info("Opened ONNX session for {}", key);
                }
                return holder.session;
            }
        } catch (Exception | Error e) {
            releaseHolder(key, holder);
            throw e;
        }
    }

    /** Gives a session back; the last user closes it. */
    public void release(SharedSession session) {
        Holder holder;
        synchronized (this) {
            holder = holders.get(session.key());
        }
        if (holder != null) {
            releaseHolder(session.key(), holder);
        }
    }

    private void releaseHolder(Key key, Holder holder) {
        SharedSession toClose = null;
        synchronized (this) {
            holder.references--;
            if (holder.references == 0 && holders.get(key) == holder) {
                holders.remove(key);
                toClose = holder.session;
            }
        }
        if (toClose != null) {
            try {
                toClose.close();
                closed.incrementAndGet();
                LOG.info("Closed ONNX session for {}", key);
            } catch (Exception e) {
                LOG.warn("Failed to close ONNX session for {}", key, e);
            } finally {
                TaskManagerSessions.closed(); // no longer held, as openSessions() says, even if close failed
            }
        }
    }

    /** Sessions open now in this process. */
    public synchronized int openSessions() {
        return (int) holders.values().stream().filter(h -> h.session != null).count();
    }

    /** Users holding a session now, across all sessions of this process. */
    public synchronized int references() {
        return holders.values().stream().mapToInt(h -> h.references).sum();
    }

    /** Sessions ever opened in this process. */
    public long sessionsCreated() {
        return created.get();
    }

    /** Sessions ever closed in this process. */
    public long sessionsClosed() {
        return closed.get();
    }
}
