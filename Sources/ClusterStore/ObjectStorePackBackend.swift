import BlobStore
import Foundation
import Logging
import ObjectStorage
import PostgresIndex
#if canImport(Glibc)
import Glibc
#endif

/// Pack files as objects (`<prefix><16 hex digits>.pack`) in S3-compatible object storage:
/// Ceph's radosgw in cluster mode, replicated by Ceph.
///
/// Writes are staged in a local pack folder of this process's own and uploaded whole by
/// `sync`, which the store calls before its index points at them: so a committed record is
/// always in object storage, readable by every node and kept by Ceph's replicas when this
/// node is lost. Each `sync` seals the staged pack and uploads it as one object (a
/// multipart upload when large), never appending to an uploaded object; small objects from
/// small pushes are merged later, when the settler rewrites them into large settled packs.
/// (Streaming an open pack as a multipart upload instead would leave committed records in
/// an object that does not exist until the upload completes.)
///
/// A pack this node is writing is held against claims by every node (a session advisory
/// lock in the index database, see `PostgresCoordination.holdPack`) until every writer that
/// appended to it has ended and it is uploaded. Reads of other packs are ranged GETs through
/// a block cache.
final class ObjectStorePackBackend: PackBackend, @unchecked Sendable {
    let client: S3Client
    let prefix: String
    private let staging: LocalPackBackend
    private let stagingDirectory: String
    private let locks: PostgresCoordination
    private let cache: PackBlockCache
    private let logger: Logger
    private let lock = NSLock()
    private let syncLock = NSLock()
    /// Keeps this process's staging folder marked as in use (see `removeDeadStaging`).
    private let stagingLock: Int32
    /// Packs this process has written to, with the writers still open on each.
    private var writers: [UInt64: Set<PackWriter>] = [:]
    /// Of those, the ones already in object storage.
    private var uploaded: Set<UInt64> = []

    init(client: S3Client, prefix: String, nodeDirectory: String, sizeLimit: UInt64, cacheBytes: Int,
         locks: PostgresCoordination, logger: Logger) throws {
        self.client = client
        self.prefix = prefix
        self.locks = locks
        self.logger = logger
        cache = PackBlockCache(capacityBytes: cacheBytes)
        let parent = nodeDirectory + "/staging"
        for dir in [nodeDirectory, parent] where mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw BlobStoreError(.io, "create \(dir): \(String(cString: strerror(errno)))")
        }
        ObjectStorePackBackend.removeDeadStaging(parent)
        // One folder per process: another process on the same node folder (a `blobctl put`
        // beside `blobctl serve`) never sees, adopts or removes this one's packs.
        var directory = ""
        var fd: Int32 = -1
        while fd < 0 {
            directory = parent + "/" + String(UInt64.random(in: 1...UInt64.max), radix: 16)
            guard mkdir(directory, 0o755) == 0 else { continue }
            fd = ObjectStorePackBackend.lockFile(directory + "/owner.lock")
        }
        stagingLock = fd
        stagingDirectory = directory
        staging = LocalPackBackend(directory: directory, sizeLimit: sizeLimit, adoptsPacks: false)
    }

    deinit {
        // Whatever is still staged was never synced, so nothing in the index points at it.
        try? FileManager.default.removeItem(atPath: stagingDirectory)
        close(stagingLock)
    }

    /// An exclusive `flock` on `path` (created when missing), or -1 while another holds it.
    private static func lockFile(_ path: String) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return -1 }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
        close(fd)
        return -1
    }

    /// Removes the staging folders of processes that are gone (their lock can be taken).
    private static func removeDeadStaging(_ parent: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] {
            let directory = parent + "/" + name
            let fd = lockFile(directory + "/owner.lock")
            guard fd >= 0 else { continue }
            try? FileManager.default.removeItem(atPath: directory)
            close(fd)
        }
    }

    func key(_ id: UInt64) -> String { prefix + PackFormat.fileName(for: id) }

    // MARK: Writing

    func beginWriting() -> PackWriter { staging.beginWriting() }

    func endWriting(_ writer: PackWriter) {
        staging.endWriting(writer)
        lock.lock()
        var done: [UInt64] = []
        for (id, open) in writers where open.contains(writer) {
            var rest = open
            rest.remove(writer)
            writers[id] = rest
            if rest.isEmpty && uploaded.contains(id) { done.append(id) }
        }
        for id in done { forget(id) }
        lock.unlock()
        for id in done { locks.releasePack(id) }
    }

    /// Stops tracking a pack that is uploaded and has no writer left. Lock held.
    private func forget(_ id: UInt64) {
        writers[id] = nil
        uploaded.remove(id)
    }

    func append(_ records: [PendingRecord], for writer: PackWriter) throws -> [ChunkLocation] {
        let locations = try staging.append(records, for: writer)
        for id in Set(locations.map(\.packID)) {
            lock.lock()
            let new = writers[id] == nil
            writers[id, default: []].insert(writer)
            lock.unlock()
            // The lock is taken before anything can point at the pack: a claim elsewhere
            // sees it held from the pack's first record until its writers end.
            if new { try locks.holdPack(id) }
        }
        return locations
    }

    /// Seals the staged pack and uploads every staged pack: after this, every record
    /// appended so far is in object storage.
    func sync() throws {
        syncLock.lock()
        defer { syncLock.unlock() }
        try staging.seal()
        try staging.sync()
        for (id, _) in try staging.packs() {
            let path = staging.path(for: id)
            do {
                try client.putFile(key: key(id), path: path)
            } catch {
                throw ObjectStorePackBackend.storeError(error, doing: "upload pack \(PackFormat.fileName(for: id))")
            }
            lock.lock()
            uploaded.insert(id)
            let done = writers[id]?.isEmpty ?? true
            if done { forget(id) }
            lock.unlock()
            if done { locks.releasePack(id) }
            // Read from object storage from now on (a reader that already opened the file
            // keeps its handle; one that has not falls back to object storage).
            unlink(path)
        }
    }

    func seal() throws { try sync() }

    func importPack(id: UInt64, size: UInt64, from source: (UInt64, UnsafeMutableRawBufferPointer) throws -> Int) throws {
        // Through this process's staging folder, so the upload reads a whole local file.
        try staging.importPack(id: id, size: size, from: source)
        defer { unlink(staging.path(for: id)) }
        do {
            try client.putFile(key: key(id), path: staging.path(for: id))
        } catch {
            throw ObjectStorePackBackend.storeError(error, doing: "upload pack \(PackFormat.fileName(for: id))")
        }
    }

    // MARK: Reading

    func read(pack id: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if access(staging.path(for: id), F_OK) == 0, let n = try? staging.read(pack: id, at: offset, into: buffer) { return n }
        do {
            let client = client, key = key(id)
            return try cache.read(pack: id, at: offset, into: buffer) { range in try client.get(key: key, range: range) }
        } catch let error as S3Error where error.status == 416 {
            return 0 // past the end, as pread says
        } catch {
            throw ObjectStorePackBackend.storeError(error, doing: "read pack \(PackFormat.fileName(for: id))")
        }
    }

    func packs() throws -> [(id: UInt64, size: UInt64)] {
        do {
            return try client.list(prefix: prefix).compactMap { object in
                PackFormat.id(fromFileName: String(object.key.dropFirst(prefix.count))).map { ($0, UInt64(object.size)) }
            }.sorted { $0.0 < $1.0 }
        } catch {
            throw ObjectStorePackBackend.storeError(error, doing: "list packs")
        }
    }

    // MARK: Removing

    func claim(pack id: UInt64) throws -> PackClaim? {
        lock.lock()
        let ours = writers[id] != nil
        lock.unlock()
        if ours || access(staging.path(for: id), F_OK) == 0 { return nil }
        return try locks.claimPack(id) {
            do { return try client.head(key: key(id)).map { UInt64($0.size) } } catch {
                throw ObjectStorePackBackend.storeError(error, doing: "size of pack \(PackFormat.fileName(for: id))")
            }
        }
    }

    /// One LIST for the sizes and one lock query per thousand packs, instead of a HEAD and
    /// a lock round trip each: a collection claims every empty pack at once.
    func claim(packs ids: [UInt64]) throws -> [PackClaim] {
        lock.lock()
        let candidates = ids.filter { writers[$0] == nil }
        lock.unlock()
        let sizes = Dictionary(try packs().map { ($0.id, $0.size) }, uniquingKeysWith: { a, _ in a })
        let unstaged = candidates.filter { sizes[$0] != nil && access(staging.path(for: $0), F_OK) != 0 }
        return try locks.claimPacks(unstaged) { sizes[$0] }
    }

    func remove(pack id: UInt64) throws {
        cache.drop(pack: id)
        do { try client.delete(key: key(id)) } catch {
            throw ObjectStorePackBackend.storeError(error, doing: "remove pack \(PackFormat.fileName(for: id))")
        }
    }

    /// DeleteObjects, a thousand keys per request: the collector's removals are not one
    /// round trip each (object stores that take one DELETE at a time are where GC crawls).
    func remove(packs ids: [UInt64]) -> [(id: UInt64, error: any Error)] {
        var byKey: [String: UInt64] = [:]
        for id in ids {
            cache.drop(pack: id)
            byKey[key(id)] = id
        }
        do {
            return try client.deleteObjects(keys: Array(byKey.keys)).compactMap { failure in
                byKey[failure.key].map { ($0, BlobStoreError(.io, "remove pack \(failure.key): \(failure.code) \(failure.message)") as any Error) }
            }
        } catch {
            let failure = ObjectStorePackBackend.storeError(error, doing: "remove \(ids.count) packs")
            return ids.map { ($0, failure) }
        }
    }

    func sweep() { staging.sweep() }

    /// Object storage that cannot be reached is `unavailable` (a 503, exit 75); a missing
    /// object the index points at is damage.
    static func storeError(_ error: any Error, doing operation: String) -> BlobStoreError {
        if let error = error as? BlobStoreError { return error }
        if let error = error as? S3Error {
            if error.isNotFound { return BlobStoreError(.corrupt, "\(operation): no such object in the bucket (\(error))") }
            if error.isRetryable { return BlobStoreError(.unavailable, "\(operation): object storage is unavailable: \(error)") }
            return BlobStoreError(.io, "\(operation): \(error)")
        }
        return BlobStoreError(.io, "\(operation): \(error)")
    }
}
