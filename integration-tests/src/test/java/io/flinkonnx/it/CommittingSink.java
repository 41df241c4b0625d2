package io.flinkonnx.it;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.CommittingSinkWriter;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.core.memory.DataInputViewStreamWrapper;
import org.apache.flink.core.memory.DataOutputViewStreamWrapper;

/**
 * A two-phase sink, like a transactional Kafka sink: elements written between checkpoints form a batch that
 * becomes visible ({@link #committed()}) only when its checkpoint completes; batches of a failed attempt
 * are never committed. Commits are idempotent (keyed by batch id), as retries require. Elements travel in
 * the committables through {@code serializer}; one job at a time uses it ({@link #reset()} between jobs).
 */
final class CommittingSink<T> implements Sink<T>, SupportsCommitter<CommittingSink.Batch<T>> {
    private static final long serialVersionUID = 1L;
    private static final Map<String, List<?>> COMMITTED = new ConcurrentHashMap<>();

    private final TypeSerializer<T> serializer;

    CommittingSink(TypeSerializer<T> serializer) {
        this.serializer = serializer;
    }

    /** A sink of record ids. */
    static CommittingSink<Long> ofIds() {
        return new CommittingSink<>(LongSerializer.INSTANCE);
    }

    static void reset() {
        COMMITTED.clear();
    }

    /** Every committed element, duplicates included, in no particular order. */
    @SuppressWarnings("unchecked")
    static <T> List<T> committed() {
        List<T> all = new ArrayList<>();
        COMMITTED.values().forEach(batch -> all.addAll((List<T>) batch));
        return all;
    }

    static final class Batch<T> {
        final String id;
        final List<T> elements;

        Batch(String id, List<T> elements) {
            this.id = id;
            this.elements = elements;
        }
    }

    @Override
    public SinkWriter<T> createWriter(WriterInitContext context) {
        return new Writer<>(serializer.duplicate());
    }

    @Override
    public Committer<Batch<T>> createCommitter(CommitterInitContext context) {
        return new Committer<>() {
            @Override
            public void commit(Collection<CommitRequest<Batch<T>>> requests) {
                for (CommitRequest<Batch<T>> r : requests) {
                    COMMITTED.put(r.getCommittable().id, r.getCommittable().elements);
                }
            }

            @Override
            public void close() {}
        };
    }

    @Override
    public SimpleVersionedSerializer<Batch<T>> getCommittableSerializer() {
        TypeSerializer<T> elements = serializer.duplicate();
        return new SimpleVersionedSerializer<>() {
            @Override
            public int getVersion() {
                return 1;
            }

            @Override
            public byte[] serialize(Batch<T> batch) throws IOException {
                ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                try (DataOutputViewStreamWrapper out = new DataOutputViewStreamWrapper(bytes)) {
                    out.writeUTF(batch.id);
                    out.writeInt(batch.elements.size());
                    for (T element : batch.elements) {
                        elements.serialize(element, out);
                    }
                }
                return bytes.toByteArray();
            }

            @Override
            public Batch<T> deserialize(int version, byte[] serialized) throws IOException {
                try (DataInputViewStreamWrapper in =
                        new DataInputViewStreamWrapper(new ByteArrayInputStream(serialized))) {
                    String id = in.readUTF();
                    int n = in.readInt();
                    List<T> list = new ArrayList<>(n);
                    for (int i = 0; i < n; i++) {
                        list.add(elements.deserialize(in));
                    }
                    return new Batch<>(id, list);
                }
            }
        };
    }

    private static final class Writer<T> implements CommittingSinkWriter<T, Batch<T>> {
        private final TypeSerializer<T> serializer;
        private final List<T> pending = new ArrayList<>();

        Writer(TypeSerializer<T> serializer) {
            this.serializer = serializer;
        }

        @Override
        public void write(T element, Context context) {
            pending.add(serializer.copy(element)); // the runtime may reuse the element it passed
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public Collection<Batch<T>> prepareCommit() {
            List<T> batch = new ArrayList<>(pending);
            pending.clear();
            return List.of(new Batch<>(UUID.randomUUID().toString(), batch));
        }

        @Override
        public void close() {}
    }
}
