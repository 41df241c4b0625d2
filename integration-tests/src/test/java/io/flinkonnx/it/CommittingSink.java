package io.flinkonnx.it;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.CommittingSinkWriter;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;

/**
 * A two-phase sink of record ids, like a transactional Kafka sink: ids written between checkpoints form a
 * batch that becomes visible ({@link #committed()}) only when its checkpoint completes; batches of a
 * failed attempt are never committed. Commits are idempotent (keyed by batch id), as retries require.
 */
final class CommittingSink implements Sink<Long>, SupportsCommitter<CommittingSink.Batch> {
    private static final long serialVersionUID = 1L;
    private static final Map<String, long[]> COMMITTED = new ConcurrentHashMap<>();

    static void reset() {
        COMMITTED.clear();
    }

    /** Every committed id, duplicates included. */
    static List<Long> committed() {
        List<Long> ids = new ArrayList<>();
        COMMITTED.values().forEach(batch -> {
            for (long id : batch) {
                ids.add(id);
            }
        });
        return ids;
    }

    static final class Batch {
        final String id;
        final long[] ids;

        Batch(String id, long[] ids) {
            this.id = id;
            this.ids = ids;
        }
    }

    @Override
    public SinkWriter<Long> createWriter(WriterInitContext context) {
        return new Writer();
    }

    @Override
    public Committer<Batch> createCommitter(CommitterInitContext context) {
        return new Committer<>() {
            @Override
            public void commit(Collection<CommitRequest<Batch>> requests) {
                for (CommitRequest<Batch> r : requests) {
                    COMMITTED.put(r.getCommittable().id, r.getCommittable().ids);
                }
            }

            @Override
            public void close() {}
        };
    }

    @Override
    public SimpleVersionedSerializer<Batch> getCommittableSerializer() {
        return new SimpleVersionedSerializer<>() {
            @Override
            public int getVersion() {
                return 1;
            }

            @Override
            public byte[] serialize(Batch batch) throws IOException {
                ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                try (DataOutputStream out = new DataOutputStream(bytes)) {
                    out.writeUTF(batch.id);
                    out.writeInt(batch.ids.length);
                    for (long id : batch.ids) {
                        out.writeLong(id);
                    }
                }
                return bytes.toByteArray();
            }

            @Override
            public Batch deserialize(int version, byte[] serialized) throws IOException {
                try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(serialized))) {
                    String id = in.readUTF();
                    long[] ids = new long[in.readInt()];
                    for (int i = 0; i < ids.length; i++) {
                        ids[i] = in.readLong();
                    }
                    return new Batch(id, ids);
                }
            }
        };
    }

    private static final class Writer implements CommittingSinkWriter<Long, Batch> {
        private final List<Long> pending = new ArrayList<>();

        @Override
        public void write(Long id, Context context) {
            pending.add(id);
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public Collection<Batch> prepareCommit() {
            long[] ids = pending.stream().mapToLong(Long::longValue).toArray();
            pending.clear();
            return List.of(new Batch(UUID.randomUUID().toString(), ids));
        }

        @Override
        public void close() {}
    }
}
