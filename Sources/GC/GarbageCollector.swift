import BlobStore
import Foundation

/// Drains the garbage queue.
///
/// The work is proportional to the garbage: it visits queue entries, not the store. Every
/// change happens in one index transaction; a dry run does the same work in a transaction
/// it then aborts, so its report is exactly what the real run would free at that moment.
/// Packs left with no live chunk are unlinked after the commit, each under an exclusive
/// claim so no writer can adopt it meanwhile.
///
/// One collector runs at a time per store (`Store.withMaintenanceLock`), so a collection
/// never races a compaction or an `fsck --repair` of another process.
public struct GarbageCollector: Sendable {
    public let store: Store
    /// A pack is compacted once at least this share of its bytes is dead.
    public var compactionThreshold: Double

    public init(store: Store, compactionThreshold: Double = 0.5) {
        self.store = store
        self.compactionThreshold = compactionThreshold
    }

    /// Collects, waiting for another collector or checker to finish first (`onWait` is
    /// called once if it has to wait).
    public func collect(dryRun: Bool = false, onWait: (() -> Void)? = nil) throws -> GCReport {
        try store.withMaintenanceLock(wait: true, onWait: onWait) { try collectHoldingLock(dryRun: dryRun) }!
    }

    /// Collects unless another collector or checker is running; nil then.
    public func collectIfIdle() throws -> GCReport? {
        try store.withMaintenanceLock(wait: false) { try collectHoldingLock(dryRun: false) }
    }

    private func collectHoldingLock(dryRun: Bool) throws -> GCReport {
        store.packs.sweep()
        store.coordination.removeDead() // lock files of exited processes
        let (report, doomed, stats) = try store.collectGarbage(dryRun: dryRun) { candidates in
            // Claim the empty packs now, inside the transaction, so none is adopted before
            // the commit. A pack still being written (locked) is skipped.
            do { return try store.packs.claim(packs: candidates) } catch {
                store.logger.warning("could not claim empty packs; they are removed by a later collection", metadata: ["error": "\(error)"])
                return []
            }
        }
        var final = report
        if !dryRun {
            // The claims stay held until every removal is done.
            let removing = Date()
            let failures = store.packs.remove(packs: doomed.map(\.id))
            final.packRemovalSeconds = Date().timeIntervalSince(removing)
            for failure in failures {
                store.logger.warning("could not remove pack", metadata: ["pack": "\(failure.id)", "error": "\(failure.error)"])
            }
            withExtendedLifetime(doomed) {}
        }
        let removed = Set(doomed.map(\.id))
        try compactPacks(&final, stats: stats.filter { !removed.contains($0.key) }, dryRun: dryRun)
        if try !dryRun && store.compactJournalIfNeeded() {
            store.logger.info("index journal compacted into a snapshot")
        }
        final.dryRun = dryRun
        return final
    }

    /// Compacts packs past the dead-share threshold. Each is claimed first (nobody appends
    /// to it or has unfinished records in it from a live process); `Store.compact` then
    /// leaves it alone if a live lease lists it.
    private func compactPacks(_ report: inout GCReport, stats: [UInt64: PackStats], dryRun: Bool) throws {
        for (id, size) in try store.packs.packs() {
            guard let s = stats[id], s.liveChunks > 0, size > 0 else { continue }
            let dead = size > s.liveBytes ? size - s.liveBytes : 0
            guard Double(dead) / Double(size) >= compactionThreshold else { continue }
            guard let claim = try store.packs.claim(pack: id) else { continue }
            if dryRun {
                report.packsCompacted += 1
                report.compactionBytesReclaimed += dead
                continue
            }
            guard let result = try store.compact(claim) else { continue }
            report.packsCompacted += 1
            report.compactionBytesReclaimed += result.bytesReclaimed
        }
    }
}
