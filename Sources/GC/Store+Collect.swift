import BlobStore
import Foundation

/// The index side of a collection, in one write transaction.
extension Store {
    /// Sentinel thrown to abort a dry run's transaction after computing its report.
    private struct DryRunAbort: Error {}

    /// Pops every collectable garbage entry in one write transaction (aborted when
    /// `dryRun`). Leases found dead are ended first, in the same transaction. Packs left
    /// without live chunks are offered to `claimPacks`; those it claims (no process is
    /// writing to them) and no live lease lists lose their stats record and are returned
    /// for the caller to unlink after the commit.
    /// Also returns every pack's accounting as it stands after the collection (for a dry run,
    /// as it would), so compaction can be planned on it.
    package func collectGarbage(dryRun: Bool, claimPacks: ([UInt64]) -> [PackClaim]) throws -> (GCReport, [PackClaim], [UInt64: PackStats]) {
        var outcome: (GCReport, [PackClaim], [UInt64: PackStats])?
        let readersFreed = index.clearStaleReaders()
        if readersFreed > 0 { logger.info("freed index reader slots of dead processes", metadata: ["count": "\(readersFreed)"]) }
        do {
            try index.write { txn in
                let (report, claims) = try Store.collect(txn, store: self, dryRun: dryRun, claimPacks: claimPacks)
                var stats: [UInt64: PackStats] = [:]
                try txn.scan("packs") { k, v in
                    stats[UInt64(bigEndianKey: k)] = try PackStats(decoding: v)
                    return true
                }
                outcome = (report, claims, stats)
                if dryRun { throw DryRunAbort() }
            }
        } catch is DryRunAbort {}
        return outcome!
    }

    private static func collect(_ txn: borrowing IndexTransaction, store: Store, dryRun: Bool, claimPacks: ([UInt64]) -> [PackClaim]) throws -> (GCReport, [PackClaim]) {
        var report = GCReport(dryRun: dryRun)
        let live = try store.endDeadLeases(txn)
        try store.dropStaleMounts(txn)
        let floor = collectableBelow(live)
        // Blobs first, round after round: deleting a manifest releases its children, which
        // may then be garbage too; their chunks are collected in this same pass.
        while true {
            var blobs: [(digest: Digest, origin: GarbageQueue.Origin)] = []
            try GarbageQueue.scan(txn) { kind, key, gen, origin in
                if kind == .blob && gen < floor { blobs.append((key, origin)) }
                return true
            }
            // Blobs under an unexpired hold wait; expired holds go.
            blobs = try blobs.filter { try !Store.isHeld(txn, $0.digest) }
            if blobs.isEmpty { break }
            for (digest, origin) in blobs {
                try GarbageQueue.remove(txn, .blob, digest)
                guard let raw = try txn.get("blobs", digest.key) else { continue }
                let blob = try BlobRecord(decoding: raw)
                if blob.isReferenced { continue }
                _ = try deleteBlob(txn, digest, blob, origin: origin)
                report.blobsFreed += 1
                report.freedByKind[origin.name, default: .init()].blobs += 1
                report.freedByKind[origin.name, default: .init()].bytes += blob.size
            }
        }
        var chunks: [Digest] = []
        try GarbageQueue.scan(txn) { kind, key, gen, _ in
            if kind == .chunk && gen < floor { chunks.append(key) }
            return true
        }
        var totals = try Store.totals(txn)
        var packStats: [UInt64: PackStats] = [:]
        for key in chunks {
            try GarbageQueue.remove(txn, .chunk, key)
            guard let raw = try txn.get("chunks", key.key) else { continue }
            let chunk = try ChunkRecord(decoding: raw)
            guard chunk.references == 0 else { continue }
            try txn.delete("chunks", key.key)
            let size = chunk.location.recordSize
            var s = try packStats[chunk.location.packID] ?? Store.packStats(txn, chunk.location.packID)
            if s.liveBytes < size || s.liveChunks == 0 {
                // Accounting only (the chunk itself is gone either way), but a sign of an
                // earlier inconsistency: say so; `fsck --repair` recomputes it.
                store.logger.warning("pack accounting below zero; run `blobctl fsck --repair`", metadata: [
                    "pack": "\(PackFormat.fileName(for: chunk.location.packID))", "chunk": "\(key)"])
            }
            s.liveBytes -= min(size, s.liveBytes)
            s.liveChunks -= min(1, s.liveChunks)
            s.deadBytes += size
            packStats[chunk.location.packID] = s
            totals.chunks -= 1
            totals.uniqueBytes -= UInt64(chunk.location.rawSize)
            totals.storedBytes -= size
            report.chunksFreed += 1
            report.bytesFreed += size
        }
        try Store.setTotals(txn, totals)
        for (id, s) in packStats { try Store.setPackStats(txn, id, s) }
        try GarbageQueue.scan(txn) { _, _, _, _ in
            report.deferred += 1
            return true
        }

        // Packs with nothing live. One may still hold records an ingest has not committed:
        // a live ingest's process keeps the packs it wrote to locked (so `claimPacks` skips
        // them), and a checkpointed upload's lease lists its packs.
        var statsByPack: [UInt64: PackStats] = [:]
        try txn.scan("packs") { k, v in
            statsByPack[UInt64(bigEndianKey: k)] = try PackStats(decoding: v)
            return true
        }
        let existing = try store.packs.packs()
        let existingIDs = Set(existing.map(\.id))
        // Accounting of packs that no longer exist (written by an ingest whose pack was
        // removed after its lease ended) is dropped.
        for id in statsByPack.keys where !existingIDs.contains(id) { try txn.delete("packs", id.bigEndianKey) }
        let emptyPacks = existing.filter { (statsByPack[$0.id]?.liveChunks ?? 0) == 0 }.map(\.id)
        let protected = Set(live.flatMap(\.packs))
        let claims = claimPacks(emptyPacks.filter { !protected.contains($0) })
        for claim in claims {
            try txn.delete("packs", claim.id.bigEndianKey)
            report.packsRemoved += 1
            report.packBytesRemoved += claim.size
        }
        return (report, claims)
    }
}
