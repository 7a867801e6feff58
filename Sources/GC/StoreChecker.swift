import BlobStore
import Dispatch
import Foundation

/// What `fsck` found. Every list names the objects concerned; an empty report is a healthy
/// store.
public struct FsckReport: Sendable, Codable, Equatable {
    public var blobs = 0
    public var chunks = 0
    public var packs = 0
    public var packRecords = 0
    /// "blob sha256:…: count 2, 3 references point at it" and the like.
    public var countMismatches: [String] = []
    /// Chunks a recipe lists that the index or the packs lack, and records pointing at nothing.
    public var missing: [String] = []
    /// Chunks whose bytes fail their checksum or hash.
    public var corrupt: [String] = []
    /// Blobs and chunks nothing refers to that are not queued for GC.
    public var unreferenced: [String] = []
    /// Pack bytes the index does not point at (dead, or left by ingests that never committed).
    public var unreferencedPackBytes: UInt64 = 0
    /// Stretches of pack files that do not parse or fail their checksum and that the index
    /// does not point at: torn tails of writes that never committed (a crash, a full disk).
    /// Reclaimable garbage, not damage; damage to referenced records shows in `corrupt`.
    public var damagedPackRecords = 0
    /// What `--repair` changed.
    public var repaired: [String] = []

    public var isHealthy: Bool { countMismatches.isEmpty && missing.isEmpty && corrupt.isEmpty }
}

/// The full-reachability audit behind `blobctl fsck`: a mark from the roots (tags,
/// containers, volumes, manifest edges, pins) compared with every stored count, every
/// chunk read back and hashed, every pack record checked.
public struct StoreChecker: Sendable {
    public let store: Store

    public init(store: Store) { self.store = store }

    /// Checks (and with `repair`, repairs) the store. Runs as the store's only collector or
    /// checker: waits for a running `gc` or `fsck` to finish, calling `onWait` once first.
    public func check(repair: Bool = false, verifyChunks: Bool = true, onWait: (() -> Void)? = nil) throws -> FsckReport {
        try store.withMaintenanceLock(wait: true, onWait: onWait) {
            try checkHoldingLock(repair: repair, verifyChunks: verifyChunks)
        }!
    }

    private func checkHoldingLock(repair: Bool, verifyChunks: Bool) throws -> FsckReport {
        var report = FsckReport()
        let audit = try store.audit()
        report.blobs = audit.blobCount
        report.chunks = audit.chunks.count
        for (digest, (stored, expected)) in audit.blobCounts where stored != expected {
            report.countMismatches.append("blob \(digest): count \(stored), \(expected) references point at it")
        }
        for (key, (stored, expected)) in audit.chunkCounts where stored != expected {
            report.countMismatches.append("chunk \(key): count \(stored), used \(expected) times by recipes")
        }
        report.missing += audit.missingBlobs.map { "blob \($0.0) is referenced by \($0.1) but not stored" }
        report.missing += audit.missingChunks.map { "chunk \($0.0) of blob \($0.1) is not in the index" }
        report.unreferenced += audit.unqueuedGarbage
        report.countMismatches.sort()
        report.missing.sort()

        // Every pack record: checksums, and which bytes the index points at.
        var indexed = Set<PackPosition>()
        for (_, chunk) in audit.chunks { indexed.insert(PackPosition(pack: chunk.location.packID, offset: chunk.location.offset)) }
        var found: [Digest: ChunkLocation] = [:] // intact records, for repair
        var intactIndexed = Set<PackPosition>()
        for (id, size) in try store.packs.packs() {
            report.packs += 1
            var referenced: UInt64 = 0
            let summary = try PackScanner(backend: store.packs, id: id, size: size).scan { record in
                let position = PackPosition(pack: id, offset: record.offset)
                if indexed.contains(position) {
                    referenced += UInt64(PackFormat.recordHeaderSize) + UInt64(record.header.storedSize)
                    if record.payloadIntact { intactIndexed.insert(position) }
                }
                if record.payloadIntact {
                    found[record.header.key] = ChunkLocation(packID: id, offset: record.offset, header: record.header)
                }
            }
            report.packRecords += summary.records
            report.damagedPackRecords += summary.damagedRecords
            if !summary.headerValid { report.corrupt.append("pack \(PackFormat.fileName(for: id)) has a damaged header") }
            report.unreferencedPackBytes += size - min(size, referenced + UInt64(PackFormat.headerSize))
        }

        // Without reading every chunk, a referenced record that did not parse intact is damage.
        if !verifyChunks {
            for (key, chunk) in audit.chunks where !intactIndexed.contains(PackPosition(pack: chunk.location.packID, offset: chunk.location.offset)) {
                report.corrupt.append("chunk \(key): its record in pack \(PackFormat.fileName(for: chunk.location.packID)) is damaged or missing")
            }
            report.corrupt.sort()
        }

        // Every chunk read back and hashed, on all cores.
        if verifyChunks {
            let entries = Array(audit.chunks)
            let failures = UncheckedSendableList()
            DispatchQueue.concurrentPerform(iterations: entries.count) { i in
                let (key, chunk) = entries[i]
                do {
                    try store.verifyChunk(key, at: chunk.location)
                } catch {
                    failures.append("chunk \(key): \(error)")
                }
            }
            report.corrupt = failures.items.sorted()
        }

        if repair {
            report.repaired = try store.repairIndex(intactRecords: found)
        }
        return report
    }
}


final class UncheckedSendableList: @unchecked Sendable {
    private var storage: [String] = []
    private let lock = NSLock()
    func append(_ s: String) { lock.lock(); storage.append(s); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return storage }
}
