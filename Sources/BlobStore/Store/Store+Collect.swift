import Foundation

/// Used by the GC module: the index side of a collection.
extension Store {
    /// Sentinel thrown to abort a dry run's transaction after computing its report.
    private struct DryRunAbort: Error {}

    /// Pops every collectable garbage entry in one write transaction (aborted when
    /// `dryRun`). Packs left without live chunks and not written since the oldest live
    /// lease began are offered to `claimPacks`; those it claims lose their stats record
    /// and are returned for the caller to unlink after the commit.
    /// Also returns every pack's accounting as it stands after the collection (for a dry run,
    /// as it would), so compaction can be planned on it.
    package func collectGarbage(dryRun: Bool, claimPacks: ([UInt64]) -> [PackClaim]) throws -> (GCReport, [PackClaim], [UInt64: PackStats]) {
        var outcome: (GCReport, [PackClaim], [UInt64: PackStats])?
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

    private static func collect(_ txn: borrowing LMDBTransaction, store: Store, dryRun: Bool, claimPacks: ([UInt64]) -> [PackClaim]) throws -> (GCReport, [PackClaim]) {
        var report = GCReport(dryRun: dryRun)
        try dropStaleMounts(txn)
        let floor = try collectableBelow(txn)
        // Blobs first, round after round: deleting a manifest releases its children, which
        // may then be garbage too; their chunks are collected in this same pass.
        while true {
            var blobs: [Digest] = []
            try GarbageQueue.scan(txn) { kind, key, gen in
                if kind == .blob && gen < floor { blobs.append(key) }
                return true
            }
            // Blobs under an unexpired hold wait; expired holds go.
            blobs = try blobs.filter { try !Store.isHeld(txn, $0) }
            if blobs.isEmpty { break }
            for digest in blobs {
                try GarbageQueue.remove(txn, .blob, digest)
                guard let raw = try txn.get("blobs", digest.key) else { continue }
                let blob = try BlobRecord(decoding: raw)
                if blob.isReferenced { continue }
                _ = try deleteBlob(txn, digest, blob)
                report.blobsFreed += 1
            }
        }
        var chunks: [Digest] = []
        let floorAfter = try collectableBelow(txn)
        try GarbageQueue.scan(txn) { kind, key, gen in
            if kind == .chunk && gen < floorAfter { chunks.append(key) }
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
        try GarbageQueue.scan(txn) { _, _, _ in
            report.deferred += 1
            return true
        }

        // Packs with nothing live. A pack may also hold chunks of ingests that have not
        // committed: those ingests hold leases, and wrote to the pack after taking them, so
        // a pack untouched since before the oldest live lease holds none of theirs.
        let now = UInt64(time(nil))
        let oldestLease = try leases(txn).filter { $0.isAlive(now: now) }.map(\.createdAt).min() ?? UInt64.max
        var emptyPacks: [UInt64] = []
        var statsByPack: [UInt64: PackStats] = [:]
        try txn.scan("packs") { k, v in
            let id = UInt64(bigEndianKey: k)
            statsByPack[id] = try PackStats(decoding: v)
            return true
        }
        for (id, size) in try store.packs.packs() {
            let stats = statsByPack[id] ?? PackStats()
            if stats.liveChunks == 0 {
                emptyPacks.append(id)
                _ = size
            }
        }
        let claims = claimPacks(emptyPacks).filter { $0.modifiedAt + 2 < oldestLease }
        let sizes = Dictionary(try store.packs.packs().map { ($0.id, $0.size) }, uniquingKeysWith: { a, _ in a })
        for claim in claims {
            try txn.delete("packs", claim.id.bigEndianKey)
            report.packsRemoved += 1
            report.packBytesRemoved += sizes[claim.id] ?? 0
        }
        return (report, claims)
    }
}
