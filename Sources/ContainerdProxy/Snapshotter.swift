import BlobStore
import Foundation
import GRPCCore
#if canImport(Glibc)
import Glibc
#endif

/// A mount as containerd performs it (mount(2): type, source, options).
struct SnapshotMount: Sendable, Equatable {
    var type: String
    var source: String
    var options: [String]
}

/// containerd's snapshotter, backed by the store: the trees containers run on.
///
/// An active snapshot is an overlayfs upper directory (`<n>/fs`, with `<n>/work`) stacked
/// over its committed ancestors, or a plain directory bound when it has none. Committing
/// keeps the tree as a lower directory and archives it, in the background, as an image
/// layer into the store (chunked, deduplicated with every other blob, claimed by holder
/// "containerd-snapshots"). A committed tree no snapshot has stood on for `settleAfter` seconds
/// is dropped ("settled": its bytes are then only the store's deduplicated chunks) and
/// unpacked again from its layer when a snapshot next stands on it. Lower directories are
/// plain local directories, not a FUSE view: a restarted or killed proxy cannot break a
/// running container's file system, and reads run at local disk speed.
///
/// Snapshot names are containerd's backend names, kept in a catalog beside the trees, since
/// containerd remembers them across restarts of either side. All calls take one lock.
final class Snapshotter: @unchecked Sendable {
    static let holder = "containerd-snapshots"
    let store: Store
    let root: String
    let settleAfter: TimeInterval?
    private let lock = NSLock()
    private var catalog: SnapshotCatalog
    /// When a snapshot last stood on each committed tree (in memory: a restart counts as use).
    private var lastUsed: [String: Date] = [:]
    /// Trees being archived, by snapshot folder, one at a time.
    private var archives: [String: DispatchGroup] = [:]
    private let archiver = DispatchQueue(label: "blobstore.containerd.snapshots.archive")

    init(store: Store, settleAfter: TimeInterval? = nil) throws {
        self.store = store
        self.settleAfter = settleAfter
        root = store.root + "/containerd/snapshots"
        // overlayfs separates lower directories with ':' and options with ','.
        guard !root.contains(":"), !root.contains(",") else {
            throw BlobStoreError(.invalidArgument, "the store's path \(store.root) may not contain ':' or ',' (overlayfs mount options)")
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        catalog = try SnapshotCatalog(path: root + "/catalog.json")
        // Committed before a crash, never archived.
        locked {
            for record in catalog.records.values where record.kind == .committed && record.layer == nil { scheduleArchive(record.directory) }
        }
    }

    // MARK: - containerd's calls

    func prepare(_ key: String, parent: String, labels: [String: String], kind: SnapshotRecord.Kind) throws -> [SnapshotMount] {
        try locked {
            guard !key.isEmpty else { throw RPCError(code: .invalidArgument, message: "a snapshot key is required") }
            guard catalog[key] == nil else { throw RPCError(code: .alreadyExists, message: "snapshot \(key) already exists") }
            if !parent.isEmpty {
                guard let record = catalog[parent] else { throw RPCError(code: .notFound, message: "parent snapshot \(parent) not found") }
                guard record.kind == .committed else {
                    throw RPCError(code: .failedPrecondition, message: "parent snapshot \(parent) is not committed")
                }
            }
            let now = Date().timeIntervalSince1970
            let record = SnapshotRecord(name: key, parent: parent.isEmpty ? nil : parent, kind: kind, labels: labels,
                                        createdAt: now, updatedAt: now, directory: catalog.newDirectory(), layer: nil)
            let directory = path(record)
            try? FileManager.default.removeItem(atPath: directory) // a folder a crash left before it was cataloged
            try FileManager.default.createDirectory(atPath: directory + "/fs", withIntermediateDirectories: true)
            if kind == .active { try FileManager.default.createDirectory(atPath: directory + "/work", withIntermediateDirectories: false) }
            catalog.set(record)
            do {
                try catalog.save()
            } catch {
                catalog.remove(key)
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
            return try mounts(of: record)
        }
    }

    func mounts(_ key: String) throws -> [SnapshotMount] {
        try locked {
            let record = try find(key)
            guard record.kind != .committed else { throw RPCError(code: .failedPrecondition, message: "snapshot \(key) is committed: it has no mounts") }
            return try mounts(of: record)
        }
    }

    /// Makes active snapshot `key` committed snapshot `name` at once; its tree is archived
    /// into the store in the background (containerd unpacks the next layer meanwhile). Until
    /// then the snapshot has no layer and its tree stays; a restart archives what a crash
    /// left unarchived.
    func commit(_ name: String, key: String, labels: [String: String]) throws {
        try locked {
            var record = try find(key)
            guard record.kind == .active else { throw RPCError(code: .failedPrecondition, message: "snapshot \(key) is not active") }
            guard !name.isEmpty else { throw RPCError(code: .invalidArgument, message: "a name to commit as is required") }
            guard catalog[name] == nil else { throw RPCError(code: .alreadyExists, message: "snapshot \(name) already exists") }
            let now = Date().timeIntervalSince1970
            record.name = name
            record.kind = .committed
            record.labels = labels
            record.createdAt = now
            record.updatedAt = now
            catalog.remove(key)
            catalog.set(record)
            try catalog.save()
            lastUsed[name] = Date()
            try? FileManager.default.removeItem(atPath: path(record) + "/work")
            scheduleArchive(record.directory)
        }
    }

    /// Waits until every committed snapshot's tree is archived (tests, benchmarks).
    func waitForArchives() {
        while let pending = locked({ archives.values.first }) { pending.wait() }
    }

    private func scheduleArchive(_ directory: String) {
        guard archives[directory] == nil else { return }
        let group = DispatchGroup()
        archives[directory] = group
        archiver.async(group: group) { [self] in
            do {
                try archive(directory)
            } catch {
                // The snapshot keeps its tree and no layer: the next start tries again.
                store.logger.error("archiving snapshot folder \(directory) into the store failed: \(error)")
            }
            locked { archives[directory] = nil }
        }
    }

    /// Archives a committed snapshot's tree as an image layer and records it, claimed.
    private func archive(_ directory: String) throws {
        let tree = root + "/" + directory + "/fs"
        // Under a lease from ingest to claim, so a gc in between cannot take the layer.
        try store.withLease("containerd snapshot folder \(directory)") { _ in
            let result = try store.ingestDirectory(tree, overlayUpper: true, mediaType: "application/vnd.oci.image.layer.v1.tar")
            // Claimed and recorded together: `cleanup` drops claims no record holds.
            try locked {
                guard var record = catalog.records.values.first(where: { $0.directory == directory }), record.layer == nil else { return }
                try store.claim(result.digest, by: Self.holder)
                record.layer = result.digest
                catalog.set(record)
                try catalog.save()
            }
        }
    }

    func remove(_ key: String) throws {
        // Not while its tree is being archived.
        while let pending = try locked({ archives[try find(key).directory] }) { pending.wait() }
        try locked {
            let record = try find(key)
            if let child = catalog.children(of: key).first {
                throw RPCError(code: .failedPrecondition, message: "snapshot \(key) has children (\(child.name))")
            }
            catalog.remove(key)
            try catalog.save()
            lastUsed[key] = nil
            try removeTrees(path(record))
            if let layer = record.layer { try releaseIfUnused(layer) }
        }
    }

    func stat(_ key: String) throws -> SnapshotRecord { try locked { try find(key) } }

    /// Label changes only (containerd sends its kind and times as placeholders). Paths are
    /// `labels` (all of them) or `labels.KEY`; an empty mask means every label.
    func update(_ name: String, labels: [String: String], paths: [String]) throws -> SnapshotRecord {
        try locked {
            var record = try find(name)
            if paths.isEmpty || paths.contains("labels") {
                record.labels = labels
            } else {
                for path in paths {
                    guard path.hasPrefix("labels.") else {
                        throw RPCError(code: .invalidArgument, message: "cannot update \(path) of a snapshot: only labels change")
                    }
                    let key = String(path.dropFirst("labels.".count))
                    record.labels[key] = labels[key]
                }
            }
            record.updatedAt = Date().timeIntervalSince1970
            catalog.set(record)
            try catalog.save()
            return record
        }
    }

    /// Bytes and inodes a snapshot takes: its tree on disk, or, settled, its stored layer.
    func usage(_ key: String) throws -> (bytes: Int64, inodes: Int64) {
        let (record, tree) = try locked { () -> (SnapshotRecord, String) in
            let record = try find(key)
            return (record, path(record) + "/fs")
        }
        if let usage = DiskUsage.of(tree) { return usage }
        guard let layer = record.layer else { return (0, 0) }
        return (Int64(try store.stat(layer).size), 0)
    }

    func list() -> [SnapshotRecord] {
        lock.lock()
        defer { lock.unlock() }
        return catalog.records.values.sorted { $0.name < $1.name }
    }

    /// What a crash left: folders no snapshot owns, and layer claims no snapshot holds.
    func cleanup() throws {
        try locked {
            let owned = Set(catalog.records.values.map(\.directory))
            for folder in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            where !owned.contains(folder) && folder.allSatisfy(\.isNumber) {
                try removeTrees(root + "/" + folder)
            }
            let held = Set(catalog.records.values.compactMap(\.layer))
            for claim in try store.claims(by: Self.holder) where !held.contains(claim.digest) {
                _ = try store.unclaim(claim.digest, by: Self.holder)
            }
        }
    }

    /// Drops the trees of committed snapshots nothing has stood on for `idle` seconds; their
    /// layers stay in the store and are unpacked again when needed. Returns how many went.
    @discardableResult
    func settle(idle: TimeInterval) throws -> Int {
        try locked {
            let inUse = Set(catalog.records.values.filter { $0.kind != .committed }.flatMap { catalog.ancestors(of: $0.name).map(\.name) })
            let now = Date()
            var settled = 0
            for record in catalog.records.values where record.kind == .committed && !inUse.contains(record.name) && record.layer != nil {
                let tree = path(record) + "/fs"
                guard FileManager.default.fileExists(atPath: tree) else { continue }
                guard now.timeIntervalSince(lastUsed[record.name] ?? .distantPast) >= idle else { continue }
                // Renamed away first: a crash mid-removal leaves no half tree under the name.
                let doomed = path(record) + "/fs.settled"
                try? removeTrees(doomed)
                guard rename(tree, doomed) == 0 else { throw BlobStoreError(.io, "cannot settle \(tree): \(String(cString: strerror(errno)))") }
                try removeTrees(doomed)
                settled += 1
            }
            return settled
        }
    }

    // MARK: - Trees

    private func path(_ record: SnapshotRecord) -> String { root + "/" + record.directory }

    /// The mounts that give `record`'s file system: its ancestors' trees (unpacked again if
    /// settled) as overlayfs lower directories.
    private func mounts(of record: SnapshotRecord) throws -> [SnapshotMount] {
        let lowers = try catalog.ancestors(of: record.name).map { try materialize($0) }
        let own = path(record)
        switch (record.kind, lowers.count) {
        case (.active, 0):
            return [SnapshotMount(type: "bind", source: own + "/fs", options: ["rbind", "rw"])]
        case (.active, _):
            return [SnapshotMount(type: "overlay", source: "overlay",
                                  options: ["index=off", "workdir=" + own + "/work", "upperdir=" + own + "/fs",
                                            "lowerdir=" + lowers.joined(separator: ":")])]
        case (_, 0):
            return [SnapshotMount(type: "bind", source: own + "/fs", options: ["rbind", "ro"])]
        case (_, 1):
            return [SnapshotMount(type: "bind", source: lowers[0], options: ["rbind", "ro"])]
        default:
            return [SnapshotMount(type: "overlay", source: "overlay", options: ["index=off", "lowerdir=" + lowers.joined(separator: ":")])]
        }
    }

    /// A committed snapshot's tree, unpacked from its layer if it was settled.
    private func materialize(_ record: SnapshotRecord) throws -> String {
        lastUsed[record.name] = Date()
        let tree = path(record) + "/fs"
        if FileManager.default.fileExists(atPath: tree) { return tree }
        guard let layer = record.layer else { throw BlobStoreError(.notFound, "snapshot \(record.name) has neither a tree nor a layer") }
        let partial = path(record) + "/fs.partial"
        try? removeTrees(partial)
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        let source = try BlobByteSource(store: store, digest: layer)
        try TarExtractor.extract(TarReader { try source.read(into: $0) }, into: partial, overlayUpper: true)
        guard rename(partial, tree) == 0 else { throw BlobStoreError(.io, "cannot rename \(partial): \(String(cString: strerror(errno)))") }
        return tree
    }

    private func removeTrees(_ folder: String) throws {
        guard FileManager.default.fileExists(atPath: folder) else { return }
        // overlayfs leaves `work/work` with mode 000; root removes it all the same.
        try FileManager.default.removeItem(atPath: folder)
    }

    private func releaseIfUnused(_ layer: Digest) throws {
        guard !catalog.records.values.contains(where: { $0.layer == layer }) else { return }
        _ = try store.unclaim(layer, by: Self.holder)
    }

    private func find(_ key: String) throws -> SnapshotRecord {
        guard let record = catalog[key] else { throw RPCError(code: .notFound, message: "snapshot \(key) not found") }
        return record
    }

    private func locked<T>(_ work: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try work()
    }
}

/// Bytes (allocated blocks) and inodes under a folder, each inode counted once.
enum DiskUsage {
    static func of(_ path: String) -> (bytes: Int64, inodes: Int64)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        var seen = Set<UInt64>()
        var bytes: Int64 = 0
        var pending = [path]
        while let next = pending.popLast() {
            var st = stat()
            guard lstat(next, &st) == 0, seen.insert(UInt64(st.st_ino)).inserted else { continue }
            bytes += Int64(st.st_blocks) * 512
            if st.st_mode & S_IFMT == S_IFDIR {
                for child in (try? FileManager.default.contentsOfDirectory(atPath: next)) ?? [] { pending.append(next + "/" + child) }
            }
        }
        return (bytes, Int64(seen.count))
    }
}
