package io.flinkonnx.cli;

import java.io.IOException;
import java.net.URI;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.flink.core.fs.FSDataOutputStream;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.FileSystemFactory;
import org.apache.flink.core.fs.Path;
import org.apache.flink.core.fs.local.LocalFileSystem;

/**
 * A Flink file system for the scheme {@code norename://} that stores local files ({@code norename:///tmp/x}
 * is {@code /tmp/x}) and refuses every rename, as Flink's file systems say they cannot rename: {@code rename}
 * returns false. It stands for a store without rename, registered through Flink's real FileSystem factory
 * mechanism, and records the order in which files are created so a test can see which came last.
 */
public final class NoRenameFileSystemFactory implements FileSystemFactory {
    static final String SCHEME = "norename";

    /** Local paths of the files created through this file system, in creation order. */
    static final List<String> CREATED = new CopyOnWriteArrayList<>();

    @Override
    public String getScheme() {
        return SCHEME;
    }

    @Override
    public FileSystem create(URI fsUri) {
        return new LocalFileSystem() {
            @Override
            public FSDataOutputStream create(Path filePath, WriteMode overwrite) throws IOException {
                CREATED.add(filePath.toUri().getPath());
                return super.create(filePath, overwrite);
            }

            @Override
            public boolean rename(Path src, Path dst) {
                return false;
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
