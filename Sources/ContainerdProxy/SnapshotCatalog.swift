import BlobStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One snapshot as containerd knows it, under the backend name containerd gave it
/// (`<namespace>/<sequence>/<key>`): containerd keeps its names in its own database, so
/// these must outlive the proxy.
struct SnapshotRecord: Codable, Sendable, Equatable {
    enum Kind: String, Codable, Sendable { case view, active, committed }

    var name: String
    var parent: String?
    var kind: Kind
    var labels: [String: String]
    /// Seconds since 1970.
    var createdAt: Double
    var updatedAt: Double
    /// The folder under the snapshots root holding its trees (`fs`, and `work` while active).
    var directory: String
    /// A committed snapshot's content: its diff archived as an image layer in the store.
    var layer: Digest?
}

/// Every snapshot, saved as one JSON file that is replaced whole (written beside it, synced,
/// renamed over it): a crash leaves the old catalog or the new one. Not thread-safe: the
/// snapshotter calls it under its lock.
struct SnapshotCatalog {
    private struct Saved: Codable {
        var version = 1
        var nextDirectory: Int
        var snapshots: [SnapshotRecord]
    }

    let path: String
    private(set) var records: [String: SnapshotRecord] = [:]
    private var nextDirectory = 1

    init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let saved: Saved
        do {
            saved = try JSONDecoder().decode(Saved.self, from: data)
        } catch {
            throw BlobStoreError(.corrupt, "cannot read the snapshot catalog \(path): \(error)")
        }
        guard saved.version == 1 else { throw BlobStoreError(.unsupportedFormat, "snapshot catalog \(path) has version \(saved.version)") }
        nextDirectory = saved.nextDirectory
        for record in saved.snapshots { records[record.name] = record }
    }

    subscript(name: String) -> SnapshotRecord? { records[name] }

    /// A folder name no snapshot has had.
    mutating func newDirectory() -> String {
        defer { nextDirectory += 1 }
        return String(nextDirectory)
    }

    mutating func set(_ record: SnapshotRecord) { records[record.name] = record }
    mutating func remove(_ name: String) { records[name] = nil }

    func children(of name: String) -> [SnapshotRecord] { records.values.filter { $0.parent == name } }

    /// `name`'s parent, its parent's parent and so on, nearest first.
    func ancestors(of name: String) -> [SnapshotRecord] {
        var chain: [SnapshotRecord] = []
        var next = records[name]?.parent
        while let parent = next, let record = records[parent] {
            chain.append(record)
            next = record.parent
        }
        return chain
    }

    func save() throws {
        let saved = Saved(nextDirectory: nextDirectory, snapshots: records.values.sorted { $0.name < $1.name })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(saved)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BlobStoreError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            throw BlobStoreError(.io, "cannot save the snapshot catalog \(path): \(String(cString: strerror(errno)))")
        }
    }
}
