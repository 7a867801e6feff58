import BlobStore
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Volumes as engines use them: create, mount for a container, unmount, remove. One
/// implementation behind every front end (the Docker volume plugin; CSI next).
///
/// A volume's content is the store's volume snapshot (a tar, deduplicated chunk by chunk).
/// Mounting gives a writable directory under `<store>/volume-work/<name>/data`, unpacked
/// from the current snapshot unless the directory is already that snapshot; engines mount
/// once per container, with an ID each, so mounts are counted by ID. When the last ID
/// unmounts, the directory is archived and becomes the volume's next snapshot: a new
/// version costs only the chunks that changed. That happens in the background, so an
/// unmount answers at once (engines wait on it); a mount of the same volume waits for it.
/// The mount IDs, the snapshot a directory holds and a "dirty" mark (a version not yet
/// recorded) live in files beside it, so a restarted process picks up where the last one
/// was: it records what a crash left unrecorded.
public final class VolumeEngine: @unchecked Sendable {
    public let store: Store
    /// The name this engine holds mounted volumes under (`VolumeInfo.holds`), so `volume
    /// rm`, `prune` and `restore` leave them alone until their last version is recorded.
    public let holder: String
    let workRoot: String
    private let lock = NSLock()
    /// Versions being recorded in the background, by volume (under `lock`).
    private var recordings: [String: DispatchGroup] = [:]
    /// Each volume's own lock (the map under `lock`).
    private var volumeLocks: [String: NSLock] = [:]
    private let recorder = DispatchQueue(label: "blobstore.volumes.record", attributes: .concurrent)

    /// Whether each recorded version stays in the volume's history (Docker's volumes), or
    /// replaces the previous one (CSI's, whose history is its snapshots: deleting one of
    /// those must free what only it held).
    public let keepsVersions: Bool

    public init(store: Store, holder: String = "volume-engine", keepsVersions: Bool = true) throws {
        self.store = store
        self.holder = holder
        self.keepsVersions = keepsVersions
        workRoot = store.root + "/volume-work"
        try FileManager.default.createDirectory(atPath: workRoot, withIntermediateDirectories: true)
        // What a crash left: unmounted directories whose last version was never recorded.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: workRoot)) ?? [] {
            guard (try? mountIDs(name))?.isEmpty ?? false else { continue }
            if FileManager.default.fileExists(atPath: statePath(name, "dirty")) {
                scheduleRecording(name)
            } else {
                // Recorded, but the process ended before it let go of the volume.
                try? store.releaseVolume(name, by: holder)
            }
        }
    }

    /// Waits until no version of any volume is being recorded (tests, shutdown).
    public func waitForRecordings() {
        while true {
            lock.lock()
            let pending = Array(recordings.values)
            lock.unlock()
            if pending.isEmpty { return }
            for group in pending { group.wait() }
        }
    }

    public struct Volume: Sendable, Equatable {
        public var info: VolumeInfo
        /// The directory handed to containers, while mounted.
        public var mountpoint: String?
        public var mountIDs: [String]
    }

    /// Creates a volume, empty or (`from=IMAGE[:PATH]`) holding an image's directory;
    /// creating an existing one again is fine (engines retry) and changes nothing. Unknown
    /// options are refused by name, and a failed seed leaves nothing created.
    public func create(_ name: String, options: [String: String] = [:]) throws -> Volume {
        try ObjectName.validate(name, kind: "volume")
        if let unknown = options.keys.sorted().first(where: { $0 != "from" }) {
            throw BlobStoreError(.invalidArgument, "unknown volume option \"\(unknown)\" (this driver takes from=IMAGE[:PATH])")
        }
        let seed = try options["from"].map { try ImageSeed(parsing: $0) }
        return try locked(name) {
            if (try? store.volume(name)) == nil {
                if let seed {
                    try seed.seed(name, store: store, scratch: workRoot + "/.seed-" + name)
                } else {
                    _ = try store.createVolume(name)
                }
            }
            return try volume(name)
        }
    }

    public func volume(_ name: String) throws -> Volume {
        let info = try store.volume(name)
        let ids = try mountIDs(name)
        return Volume(info: info, mountpoint: ids.isEmpty ? nil : dataPath(name), mountIDs: ids)
    }

    public func list() throws -> [Volume] {
        try store.volumes().map { info in
            let ids = try mountIDs(info.name)
            return Volume(info: info, mountpoint: ids.isEmpty ? nil : dataPath(info.name), mountIDs: ids)
        }
    }

    /// A writable directory with the volume's content, for mount `id`.
    public func mount(_ name: String, id: String) throws -> String {
        try lockedAfterRecording(name) {
            let info = try store.volume(name)
            var ids = try mountIDs(name)
            if ids.isEmpty {
                try prepareDirectory(name, snapshot: info.snapshot)
                try store.holdVolume(name, by: holder)
            }
            if !ids.contains(id) { ids.append(id) }
            try writeLines(ids, to: statePath(name, "mounts"))
            return dataPath(name)
        }
    }

    /// Ends mount `id`; the last one records the directory as the volume's next snapshot.
    public func unmount(_ name: String, id: String) throws {
        try locked(name) {
            var ids = try mountIDs(name)
            guard let index = ids.firstIndex(of: id) else {
                throw BlobStoreError(.notFound, "volume \(name) has no mount \(id)")
            }
            ids.remove(at: index)
            if ids.isEmpty {
                // Marked before it is scheduled: a crash from here on is recorded at restart.
                try Data().write(to: URL(fileURLWithPath: statePath(name, "dirty")), options: .atomic)
            }
            try writeLines(ids, to: statePath(name, "mounts"))
            if ids.isEmpty { scheduleRecording(name) }
        }
    }

    /// Removes a volume that is not mounted; its bytes go at the next `gc`.
    public func remove(_ name: String) throws {
        try lockedAfterRecording(name) {
            let ids = try mountIDs(name)
            guard ids.isEmpty else {
                throw BlobStoreError(.invalidArgument, "volume \(name) is mounted (\(ids.count) mount(s)); unmount it first")
            }
            try store.removeVolume(name)
            try? FileManager.default.removeItem(atPath: workRoot + "/" + name)
        }
    }

    /// Makes version `number` the volume's content again, as its newest version; the next
    /// mount shows it. Refused while mounted. Returns the new version's number.
    @discardableResult
    public func restore(_ name: String, version number: Int) throws -> Int {
        try lockedAfterRecording(name) {
            let ids = try mountIDs(name)
            guard ids.isEmpty else {
                throw BlobStoreError(.invalidArgument, "volume \(name) is mounted (\(ids.count) mount(s)); unmount it first")
            }
            return try store.restoreVolume(name, version: number)
        }
    }

    public func versions(_ name: String) throws -> [Store.VolumeVersion] { try store.volumeVersions(name) }

    /// Records the volume's directory as its next version now, mounted or not (a snapshot
    /// of a volume in use: what its files hold at this moment). Returns the current snapshot.
    @discardableResult
    public func recordNow(_ name: String) throws -> Digest? {
        try lockedAfterRecording(name) {
            try recordVersion(name)
            if try mountIDs(name).isEmpty { unlink(statePath(name, "dirty")) }
            return try store.volume(name).snapshot
        }
    }

    /// Creates volume `name` holding `snapshot` (another volume's version: no byte is copied),
    /// or empty when nil; an existing volume is left as it is (callers that must tell a
    /// retry from a clash keep what they asked for).
    public func create(_ name: String, content snapshot: Digest?) throws -> Volume {
        try ObjectName.validate(name, kind: "volume")
        return try locked(name) {
            if (try? store.volume(name)) != nil {
                // exists: a retry
            } else if let snapshot {
                try store.setVolumeSnapshot(name, snapshot)
            } else {
                _ = try store.createVolume(name)
            }
            return try volume(name)
        }
    }

    // MARK: - State

    /// Under `name`'s own lock: calls on one volume take turns, calls on different volumes
    /// do not wait for each other (a slow index commit for one must not hold up Docker's
    /// calls for the others).
    private func locked<T>(_ name: String, _ work: () throws -> T) throws -> T {
        let volumeLock = lockOf(name)
        volumeLock.lock()
        defer { volumeLock.unlock() }
        return try work()
    }

    private func lockOf(_ name: String) -> NSLock {
        lock.lock()
        defer { lock.unlock() }
        if let existing = volumeLocks[name] { return existing }
        let created = NSLock()
        volumeLocks[name] = created
        return created
    }

    private func pendingRecording(_ name: String) -> DispatchGroup? {
        lock.lock()
        defer { lock.unlock() }
        return recordings[name]
    }

    /// Under `name`'s lock, once no version of it is being recorded.
    private func lockedAfterRecording<T>(_ name: String, _ work: () throws -> T) throws -> T {
        let volumeLock = lockOf(name)
        while true {
            if let pending = pendingRecording(name) { pending.wait(); continue }
            volumeLock.lock()
            // Only a call holding this lock schedules a recording, but one may have just done so.
            if pendingRecording(name) == nil { break }
            volumeLock.unlock()
        }
        defer { volumeLock.unlock() }
        return try work()
    }

    /// Starts recording `name`'s directory as its next version (called under `name`'s lock,
    /// or at start).
    private func scheduleRecording(_ name: String) {
        lock.lock()
        defer { lock.unlock() }
        guard recordings[name] == nil else { return }
        let group = DispatchGroup()
        recordings[name] = group
        recorder.async(group: group) { [self] in
            do {
                try recordVersion(name)
                unlink(statePath(name, "dirty"))
                try store.releaseVolume(name, by: holder)
            } catch {
                // Still marked dirty: the next unmount or restart tries again.
                store.logger.error("recording a version of volume \(name) failed: \(error)")
            }
            lock.lock()
            recordings[name] = nil
            lock.unlock()
        }
    }

    func dataPath(_ name: String) -> String { workRoot + "/" + name + "/data" }
    private func statePath(_ name: String, _ file: String) -> String { workRoot + "/" + name + "/" + file }

    private func mountIDs(_ name: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: statePath(name, "mounts"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// Written to a temporary file and renamed over the old one: a crash leaves one or the other.
    private func writeLines(_ lines: [String], to path: String) throws {
        let temporary = path + ".tmp"
        let text = lines.map { $0 + "\n" }.joined()
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            throw BlobStoreError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else { throw BlobStoreError(.io, "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))") }
    }

    /// The data directory as `snapshot`: kept when it already is (its "base" says so),
    /// otherwise unpacked anew.
    private func prepareDirectory(_ name: String, snapshot: Digest?) throws {
        let data = dataPath(name)
        let base = try? String(contentsOfFile: statePath(name, "base"), encoding: .utf8)
        if FileManager.default.fileExists(atPath: data), base == (snapshot?.description ?? "empty") { return }
        try? FileManager.default.removeItem(atPath: data)
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        if let snapshot {
            let source = try BlobByteSource(store: store, digest: snapshot)
            try TarExtractor.extract(TarReader { try source.read(into: $0) }, into: data)
        }
        try Data((snapshot?.description ?? "empty").utf8).write(to: URL(fileURLWithPath: statePath(name, "base")), options: .atomic)
        try Data(try TreeSignature.of(data).utf8).write(to: URL(fileURLWithPath: statePath(name, "signature")), options: .atomic)
    }

    /// Archives the data directory (deterministically: the same tree, the same digest) and
    /// makes it the volume's snapshot, under a lease so GC cannot take it in between.
    private func recordVersion(_ name: String) throws {
        let data = dataPath(name)
        guard FileManager.default.fileExists(atPath: data) else { return }
        // Nothing changed since the last version (a container that only read): no new one.
        let signature = try TreeSignature.of(data)
        if let base = try? String(contentsOfFile: statePath(name, "base"), encoding: .utf8),
           base == (try store.volume(name).snapshot?.description ?? "empty"),
           (try? String(contentsOfFile: statePath(name, "signature"), encoding: .utf8)) == signature {
            return
        }
        let digest = try store.withLease("volume \(name) version") { _ -> Digest in
            let result = try store.ingestDirectory(data)
            if try store.volume(name).snapshot != result.digest { try store.setVolumeSnapshot(name, result.digest, keepHistory: keepsVersions) }
            return result.digest
        }
        try Data(digest.description.utf8).write(to: URL(fileURLWithPath: statePath(name, "base")), options: .atomic)
        try Data(signature.utf8).write(to: URL(fileURLWithPath: statePath(name, "signature")), options: .atomic)
    }
}
