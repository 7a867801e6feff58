import CSIProtocol
import BlobStore
import BlobVolumes
import Foundation

/// What CSI asks of a volume or snapshot that the store does not keep: the capacity a
/// volume was created with and where its content came from (so a repeated CreateVolume can
/// be told from a clashing one), and a snapshot's source. One small JSON file each under
/// `<store>/csi/`, written atomically; the store's volumes stay the truth for existence.
///
/// A CSI snapshot is kept as a store volume named `csi-snapshot.<name>` holding the source
/// volume's version at that moment: it is counted like any volume's version (no byte is
/// copied, and `gc` frees it once deleted) and shows in `blobctl volume ls`.
struct CSICatalog: Sendable {
    let directory: String
    static let snapshotPrefix = "csi-snapshot."

    struct VolumeRecord: Codable, Equatable {
        var capacityBytes: Int64
        /// "snapshot:<id>", "volume:<id>" or "" for an empty volume.
        var source: String
    }

    struct SnapshotRecord: Codable, Equatable {
        var sourceVolume: String
        var createdAt: Double
    }

    init(store: Store) throws {
        directory = store.root + "/csi"
        for sub in ["volumes", "snapshots"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
        }
    }

    static func snapshotVolume(_ snapshotID: String) -> String { snapshotPrefix + snapshotID }
    static func isSnapshotVolume(_ name: String) -> Bool { name.hasPrefix(snapshotPrefix) }

    /// Whether `id` names a CSI volume: a store volume that is not a snapshot's.
    static func volumeExists(_ id: String, in store: Store) -> Bool {
        !isSnapshotVolume(id) && (try? store.volume(id)) != nil
    }

    /// Whether snapshot `id`'s store volume exists.
    static func snapshotExists(_ id: String, in store: Store) -> Bool {
        (try? store.volume(snapshotVolume(id))) != nil
    }

    func volume(_ id: String) -> VolumeRecord? { read("volumes", id) }
    func setVolume(_ id: String, _ record: VolumeRecord) throws { try write("volumes", id, record) }
    func removeVolume(_ id: String) { unlink(path("volumes", id)) }

    func snapshot(_ id: String) -> SnapshotRecord? { read("snapshots", id) }
    func setSnapshot(_ id: String, _ record: SnapshotRecord) throws { try write("snapshots", id, record) }
    func removeSnapshot(_ id: String) { unlink(path("snapshots", id)) }

    private func path(_ kind: String, _ id: String) -> String { directory + "/" + kind + "/" + id + ".json" }

    private func read<T: Decodable>(_ kind: String, _ id: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path(kind, id)) else { return nil }
        return try? JSONDecoder().decode(T.self, from: data)
    }

    private func write<T: Encodable>(_ kind: String, _ id: String, _ value: T) throws {
        let target = path(kind, id)
        let temporary = target + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: try JSONEncoder().encode(value)),
              rename(temporary, target) == 0 else {
            throw BlobStoreError(.io, "cannot write \(target): \(String(cString: strerror(errno)))")
        }
    }
}

/// One operation at a time per volume or snapshot: a second one meanwhile gets ABORTED, as
/// the spec asks (the CO retries).
final class OperationLocks: @unchecked Sendable {
    private let lock = NSLock()
    private var busy = Set<String>()

    func run<T>(_ key: String, _ work: () throws -> T) throws -> T {
        lock.lock()
        guard busy.insert(key).inserted else {
            lock.unlock()
            throw CSIError.aborted("an operation on \(key) is already in progress")
        }
        lock.unlock()
        defer { lock.lock(); busy.remove(key); lock.unlock() }
        return try work()
    }
}
