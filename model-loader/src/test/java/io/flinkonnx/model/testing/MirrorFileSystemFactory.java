package io.flinkonnx.model.testing;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.FileSystemFactory;
import org.apache.flink.core.fs.local.LocalFileSystem;

/**
 * A Flink file system for the scheme {@code mirror://} that serves local files: {@code mirror:///tmp/x}
 * reads {@code /tmp/x}. It lets tests take the code path of remote models (s3, hdfs, ...) — copy to a
 * temporary folder, fetch external data beside it — through Flink's real FileSystem plugin mechanism.
 *
 * <p>Tests can make reads of one file fail part-way ({@link #failReadsOf}), as a dropped connection or an
 * {@code Error} in a file system plugin would.
 */
public final class MirrorFileSystemFactory implements FileSystemFactory {
    public static final String SCHEME = "mirror";

    /** Files opened through this file system since the JVM started (tests count downloads with it). */
    public static final AtomicInteger OPENS = new AtomicInteger();

    private static final Map<String, Failure> FAILURES = new ConcurrentHashMap<>();

    private static final class Failure {
        final long afterBytes;
        final Supplier<? extends Throwable> failure;

        Failure(long afterBytes, Supplier<? extends Throwable> failure) {
            this.afterBytes = afterBytes;
            this.failure = failure;
        }
    }

    /**
     * Streams opened from now on for the local file {@code file} serve its first {@code afterBytes} bytes,
     * then throw what {@code failure} supplies (an {@code IOException}, a {@code RuntimeException} or an
     * {@code Error}); the supplier runs on the reading thread at the moment of the failure.
     */
    public static void failReadsOf(Path file, long afterBytes, Supplier<? extends Throwable> failure) {
        FAILURES.put(file.toAbsolutePath().normalize().toString(), new Failure(afterBytes, failure));
    }

    /** Undoes every {@link #failReadsOf}. */
    public static void clearFailures() {
        FAILURES.clear();
    }

    @Override
    public String getScheme() {
        return SCHEME;
    }

    @Override
    public FileSystem create(URI fsUri) throws IOException {
        return new LocalFileSystem() {
            @Override
            public FSDataInputStream open(org.apache.flink.core.fs.Path f) throws IOException {
                OPENS.incrementAndGet();
                String local = f.toUri().getPath();
                FSDataInputStream in = super.open(new org.apache.flink.core.fs.Path("file://" + local));
                Failure failure =
                        FAILURES.get(Path.of(local).toAbsolutePath().normalize().toString());
                return failure == null ? in : new FailingInputStream(in, failure);
            }

            @Override
            public URI getUri() {
                return URI.create(SCHEME + ":///");
            }

            @Override
            public boolean isDistributedFS() {
                return true;
            }
        };
    }

    /** Serves {@code afterBytes} bytes of the delegate, then throws the configured failure. */
    private static final class FailingInputStream extends FSDataInputStream {
        private final FSDataInputStream delegate;
        private final Failure failure;
        private long served;

        FailingInputStream(FSDataInputStream delegate, Failure failure) {
            this.delegate = delegate;
            this.failure = failure;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (len == 0) {
                return 0;
            }
            long left = failure.afterBytes - served;
            if (left <= 0) {
                throw fail();
            }
            int n = delegate.read(b, off, (int) Math.min(len, left));
            if (n > 0) {
                served += n;
            }
            return n;
        }

        private IOException fail() {
            Throwable t = failure.failure.get();
            if (t instanceof IOException) {
                return (IOException) t;
            }
            if (t instanceof RuntimeException) {
                throw (RuntimeException) t;
            }
            if (t instanceof Error) {
                throw (Error) t;
            }
            return new IOException(t);
        }

        @Override
        public void seek(long desired) throws IOException {
            delegate.seek(desired);
        }

        @Override
        public long getPos() throws IOException {
            return delegate.getPos();
        }

        @Override
        public void close() throws IOException {
            delegate.close();
        }
    }
}
