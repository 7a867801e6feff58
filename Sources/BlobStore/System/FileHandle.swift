#if canImport(Glibc)
import Glibc
#endif
import CFileSync

/// An owned file descriptor with the few syscalls the store needs, each retried on EINTR
/// and turned into a `BlobStoreError` that names the path.
final class FileHandle: @unchecked Sendable {
    let fd: Int32
    let path: String

    init(path: String, flags: Int32, mode: mode_t = 0o644) throws {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw BlobStoreError.io("open", path: path) }
        self.fd = fd
        self.path = path
    }

    /// Takes ownership of an open descriptor.
    init(adopting fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { Glibc.close(fd) }

    /// Reads exactly `buffer.count` bytes at `offset`; returns fewer only at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw BlobStoreError.io("read", path: path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `buffer` at `offset`.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw BlobStoreError.io("write", path: path)
            }
            done += n
        }
    }

    /// Asks the kernel to start writing a range to disk, without waiting: the `sync` that
    /// makes it durable later finds most of it already written, instead of stalling on
    /// all of it at once. Advisory, so a failure is ignored (the `sync` still reports one).
    func startWriteback(at offset: UInt64, count: Int) {
        _ = blobstore_start_writeback(fd, Int64(offset), Int64(count))
    }

    func sync() throws {
        if fsync(fd) != 0 { throw BlobStoreError.io("fsync", path: path) }
    }

    func size() throws -> UInt64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw BlobStoreError.io("fstat", path: path) }
        return UInt64(st.st_size)
    }

    func linkCount() throws -> UInt64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw BlobStoreError.io("fstat", path: path) }
        return UInt64(st.st_nlink)
    }

    func truncate(to size: UInt64) throws {
        if ftruncate(fd, off_t(size)) != 0 { throw BlobStoreError.io("truncate", path: path) }
    }

    /// Takes an exclusive advisory lock without waiting; false when another process holds it.
    func tryLockExclusive() -> Bool {
        flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    /// The names in a directory (without "." and ".."), or nil when it cannot be read.
    static func directoryEntries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Makes a directory entry (a new or renamed file in it) durable.
    static func syncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError.io("open directory", path: path) }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw BlobStoreError.io("fsync directory", path: path) }
    }
}
