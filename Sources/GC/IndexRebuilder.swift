import BlobStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `fsck --rebuild-index` did.
public struct RebuildReport: Sendable, Codable, Equatable {
    /// Where the index that was replaced went, if there was one.
    public var previousIndex: String?
    public var journalEntries = 0
    /// Torn or damaged stretches of the journal that were skipped.
    public var journalStretchesSkipped = 0
    public var packs = 0
    public var packRecords = 0
    public var blobs = 0
    public var chunks = 0
    /// Chunks a recipe names that no pack holds intact: the blobs using them cannot be read.
    public var lostChunks: [String] = []
}

/// Rebuilds a store's index from what is durable outside it: the index journal (recipes,
/// pins, object records) and the packs (every chunk record describes itself). Counts, the
/// garbage queue, totals and pack accounting are then recomputed, as `fsck --repair` does.
///
/// Run it with no other process using the store: a process that still has the old index
/// open would go on writing to it.
public enum IndexRebuilder {
    public static func rebuild(root: String) throws -> RebuildReport {
        guard access(root + "/config.json", F_OK) == 0 else {
            throw BlobStoreError(.notFound, "no store at \(root)")
        }
        guard let report = try Store.withMaintenanceLock(root: root, wait: false, { try rebuildHoldingLock(root: root) }) else {
            throw BlobStoreError(.alreadyExists, "another gc or fsck is running on \(root); stop every process using the store first")
        }
        return report
    }

    private static func rebuildHoldingLock(root: String) throws -> RebuildReport {
        var report = RebuildReport()
        let indexPath = root + "/index"
        // The old index is kept aside, never deleted: it may be wanted for a post-mortem.
        if access(indexPath, F_OK) == 0 {
            let aside = indexPath + ".replaced-\(Int(Date().timeIntervalSince1970))"
            guard rename(indexPath, aside) == 0 else { throw BlobStoreError(.io, "move \(indexPath) aside: \(String(cString: strerror(errno)))") }
            report.previousIndex = aside
        }
        guard mkdir(indexPath, 0o755) == 0 else { throw BlobStoreError(.io, "create \(indexPath): \(String(cString: strerror(errno)))") }

        let store = try Store.open(at: root)
        let journal = root + "/index.journal"
        (report.journalEntries, report.journalStretchesSkipped) = try store.replayJournal(from: journal)

        // Every intact chunk record in every pack; the first intact copy of a key wins.
        var intact: [Digest: ChunkLocation] = [:]
        for (id, size) in try store.packs.packs() {
            report.packs += 1
            let summary = try PackScanner(backend: store.packs, id: id, size: size).scan { record in
                guard record.payloadIntact, intact[record.header.key] == nil else { return }
                intact[record.header.key] = ChunkLocation(packID: id, offset: record.offset, header: record.header)
            }
            report.packRecords += summary.records
        }
        let changes = try store.repairIndex(intactRecords: intact)
        report.lostChunks = changes.filter { $0.contains("is lost") }
        try store.snapshotJournal()
        let totals = try store.totals()
        report.blobs = Int(totals.blobs)
        report.chunks = Int(totals.chunks)
        return report
    }
}
