import BlobStore
import Foundation

/// Stores a tar file as a diff or a volume snapshot after checking it end to end: every
/// member name is safe (relative, no `..`: `TarReader`), no member is written or hard-linked
/// through a symlink the archive made before it (`etc -> /etc`, then `etc/passwd`: whoever
/// extracts the volume or diff would write outside its directory), and the archive is
/// complete. The bytes checked are the bytes stored — the file is read once, each piece
/// checked and ingested — so the file cannot be swapped between the check and the ingest.
enum TarValidation {
    static func ingest(file path: String, into store: Store, mediaType: String) throws -> IngestResult {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError(.notFound, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        func readFile(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            while true {
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n >= 0 { return n }
                if errno != EINTR { throw BlobStoreError(.io, "cannot read \(path): \(String(cString: strerror(errno)))") }
            }
        }
        let session = try store.beginIngest()
        do {
            let reader = TarReader { buffer in
                let n = try readFile(buffer)
                if n > 0 { try session.append(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
                return n
            }
            var symlinks = SymlinkMembers()
            do {
                while let entry = try reader.next() { try symlinks.check(entry) }
            } catch let e as BlobStoreError {
                throw BlobStoreError(e.code, "\(path): \(e.message)")
            }
            // What follows the end marker is stored too: the blob is the file, byte for byte.
            let rest = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { rest.deallocate() }
            while case let n = try readFile(rest), n > 0 {
                try session.append(UnsafeRawBufferPointer(rebasing: rest[..<n]))
            }
            return try session.commit(mediaType: mediaType, pin: false)
        } catch {
            try? session.abort()
            throw error
        }
    }
}

/// The symlinks an archive has made so far, to refuse members that would be extracted
/// through them.
struct SymlinkMembers {
    /// Member path (normalized) -> link target.
    private var targets: [String: String] = [:]

    mutating func check(_ entry: TarEntry) throws {
        if let (link, target) = symlink(above: entry.path) {
            throw BlobStoreError(.invalidArgument, "unsafe tar member \(String(reflecting: entry.path)): it goes through the symbolic link \(String(reflecting: link)) -> \(String(reflecting: target)) made earlier in the archive, so extracting it would write outside the target directory")
        }
        if entry.kind == .hardLink, let (link, target) = symlink(above: entry.linkTarget) {
            throw BlobStoreError(.invalidArgument, "unsafe tar member \(String(reflecting: entry.path)): its hard link target \(String(reflecting: entry.linkTarget)) goes through the symbolic link \(String(reflecting: link)) -> \(String(reflecting: target)) made earlier in the archive")
        }
        if entry.kind == .symlink { targets[Self.normalized(entry.path)] = entry.linkTarget }
    }

    /// The first proper ancestor of `path` that is a symlink member, with its target.
    private func symlink(above path: String) -> (String, String)? {
        var prefix = ""
        for part in Self.normalized(path).split(separator: "/").dropLast() {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
            if let target = targets[prefix] { return (prefix, target) }
        }
        return nil
    }

    /// `./a//b/` -> `a/b` (`TarReader` has refused `..` and absolute names already).
    static func normalized(_ path: String) -> String {
        path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}

/// A volume's content: a tar file as it is (after checking it), or a directory archived
/// deterministically, so the same tree always gives the same snapshot digest.
enum VolumeSnapshot {
    static func ingest(_ source: String, into store: Store) throws -> IngestResult {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw BlobStoreError(.notFound, "\(source) does not exist")
        }
        if !isDirectory.boolValue {
            return try TarValidation.ingest(file: source, into: store, mediaType: "application/x-tar")
        }
        return try store.ingestDirectory(source)
    }
}
