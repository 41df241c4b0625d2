package io.flinkonnx.model.testing;

import java.io.IOException;
import java.net.URI;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.FileSystemFactory;
import org.apache.flink.core.fs.local.LocalFileSystem;

/**
 * A Flink file system for the scheme {@code mirror://} that serves local files: {@code mirror:///tmp/x}
 * reads {@code /tmp/x}. It lets tests take the code path of remote models (s3, hdfs, ...) — copy to a
 * temporary folder, fetch external data beside it — through Flink's real FileSystem plugin mechanism.
 */
public final class MirrorFileSystemFactory implements FileSystemFactory {
    public static final String SCHEME = "mirror";

    /** Files opened through this file system since the JVM started (tests count downloads with it). */
    public static final java.util.concurrent.atomic.AtomicInteger OPENS = new java.util.concurrent.atomic.AtomicInteger();

    @Override
    public String getScheme() {
        return SCHEME;
    }

    @Override
    public FileSystem create(URI fsUri) throws IOException {
        return new LocalFileSystem() {
            @Override
            public org.apache.flink.core.fs.FSDataInputStream open(org.apache.flink.core.fs.Path f) throws IOException {
                OPENS.incrementAndGet();
                return super.open(new org.apache.flink.core.fs.Path("file://" + f.toUri().getPath()));
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
}
