import Foundation

import BlobStore
/// The index side of `fsck`: counts recomputed from the roots, compared with the stored
/// ones, and the repair that makes them agree.
extension Store {
    package struct Audit: Sendable {
        package var blobCount = 0
        /// digest -> (stored count, expected count), for every blob.
        package var blobCounts: [Digest: (UInt64, UInt64)] = [:]
        package var chunkCounts: [Digest: (UInt64, UInt64)] = [:]
        package var chunks: [Digest: ChunkRecord] = [:]
        /// (blob, who refers to it)
        package var missingBlobs: [(Digest, String)] = []
        /// (chunk, blob)
        package var missingChunks: [(Digest, Digest)] = []
        package var unqueuedGarbage: [String] = []
        package var recipes: [Digest: [Digest]] = [:]
    }

    /// Recomputes every count from the roots in one read transaction.
    package func audit() throws -> Audit {
        try index.read { txn in try Store.audit(txn) }
    }

    /// Recomputes every count from the roots as `txn` sees the index.
    package static func audit(_ txn: borrowing IndexTransaction) throws -> Audit {
        var a = Audit()
        var expectedBlob: [Digest: UInt64] = [:]
        func refer(_ d: Digest, _ from: String) { expectedBlob[d, default: 0] += 1; _ = from }
        var referrers: [Digest: String] = [:]
        try txn.scan("images") { k, v in
            let info = try Store.imageInfo(key: k, value: v)
            refer(info.manifest, "image \(info.reference)"); referrers[info.manifest] = "image \(info.reference)"
            return true
        }
        try txn.scan("containers") { k, v in
            let c = try ContainerInfo(name: String(decoding: k, as: UTF8.self), decoding: v)
            refer(c.manifest, "container \(c.name)"); referrers[c.manifest] = "container \(c.name)"
            if let d = c.diff { refer(d, "container \(c.name)"); referrers[d] = "container \(c.name)" }
            return true
        }
        try txn.scan("volumes") { k, v in
            let vol = try VolumeInfo(name: String(decoding: k, as: UTF8.self), decoding: v)
            for s in vol.versions { refer(s, "volume \(vol.name)"); referrers[s] = "volume \(vol.name)" }
            return true
        }
        for d in try Store.mountHolds(txn) { refer(d, "mount"); referrers[d] = "a mount" }
        for d in try Store.claimedDigests(txn) { refer(d, "claim"); referrers[d] = "a claim" }
        try txn.scan("repomanifests") { k, _ in
            guard k.count > 33 else { return true }
            let d = Digest(bytes: k.baseAddress! + k.count - 32)
            refer(d, "repository"); referrers[d] = "a repository"
            return true
        }
        try txn.scan("edges") { k, v in
            let parent = Digest(bytes: k.baseAddress!)
            for i in 0..<v.count / 32 {
                let child = Digest(bytes: v.baseAddress! + i * 32)
                refer(child, "manifest \(parent)"); referrers[child] = "manifest \(parent)"
            }
            return true
        }
        var queued = Set<[UInt8]>()
        try txn.scan("garbage") { k, _ in queued.insert(Array(k)); return true }

        var expectedChunk: [Digest: UInt64] = [:]
        try txn.scan("blobs") { k, v in
            let digest = Digest(bytes: k.baseAddress!)
            let blob = try BlobRecord(decoding: v)
            a.blobCount += 1
            a.blobCounts[digest] = (blob.references, expectedBlob[digest] ?? 0)
            a.recipes[digest] = blob.chunks
            for c in blob.chunks { expectedChunk[c, default: 0] += 1 }
            if !blob.pinned && (expectedBlob[digest] ?? 0) == 0 && !queued.contains(GarbageQueue.key(.blob, digest)) {
                a.unqueuedGarbage.append("blob \(digest) is unreferenced but not queued for GC")
            }
            return true
        }
        for (d, _) in expectedBlob where a.blobCounts[d] == nil {
            a.missingBlobs.append((d, referrers[d] ?? "?"))
        }
        try txn.scan("chunks") { k, v in
            let key = Digest(bytes: k.baseAddress!)
            let chunk = try ChunkRecord(decoding: v)
            a.chunks[key] = chunk
            a.chunkCounts[key] = (chunk.references, expectedChunk[key] ?? 0)
            if (expectedChunk[key] ?? 0) == 0 && !queued.contains(GarbageQueue.key(.chunk, key)) {
                a.unqueuedGarbage.append("chunk \(key) is unused but not queued for GC")
            }
            return true
        }
        for (blob, recipe) in a.recipes {
            for c in Set(recipe) where a.chunks[c] == nil { a.missingChunks.append((c, blob)) }
        }
        return a
    }

    /// Reads one chunk and checks its SHA-256.
    package func verifyChunk(_ key: Digest, at location: ChunkLocation) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(location.rawSize), alignment: 64)
        defer { buffer.deallocate() }
        try readChunk(key, at: location, into: buffer, verify: true)
    }

    /// Makes the index agree with the roots and the packs: chunk records missing from the
    /// index are re-pointed at intact pack records, every count is set to what the roots
    /// imply, the garbage queue holds exactly the unreferenced objects, and the totals and
    /// pack accounting are recomputed. Returns what it changed.
    ///
    /// The counts are recomputed inside the repair's own write transaction, never taken
    /// from an earlier audit: blobs committed by other processes while the chunks were being
    /// hashed are counted like any other. (The caller holds the maintenance lock, so no pack
    /// named in `intactRecords` is removed meanwhile.)
    package func repairIndex(intactRecords: [Digest: ChunkLocation]) throws -> [String] {
        try index.write { txn in
            let audit = try Store.audit(txn)
            var changes: [String] = []
            // Chunks recipes need but the index lost, recovered from the packs.
            for (chunk, blob) in audit.missingChunks {
                if let location = intactRecords[chunk] {
                    try txn.put("chunks", chunk.key, ChunkRecord(location: location, references: 0).encoded())
                    changes.append("chunk \(chunk) re-indexed from pack \(PackFormat.fileName(for: location.packID))")
                } else {
                    changes.append("chunk \(chunk) of blob \(blob) is lost: no intact copy in any pack")
                }
            }
            // Counts as the roots imply.
            for (digest, (stored, expected)) in audit.blobCounts where stored != expected {
                guard var blob = try Store.blob(txn, digest) else { continue }
                blob.references = expected
                try txn.put("blobs", digest.key, blob.encoded())
                changes.append("blob \(digest): count \(stored) -> \(expected)")
            }
            var expectedChunk: [Digest: UInt64] = [:]
            for (_, recipe) in audit.recipes { for c in recipe { expectedChunk[c, default: 0] += 1 } }
            var totals = StoreTotals()
            var packStats: [UInt64: PackStats] = [:]
            var chunkKeys: [Digest] = []
            try txn.scan("chunks") { k, _ in chunkKeys.append(Digest(bytes: k.baseAddress!)); return true }
            for key in chunkKeys {
                guard let raw = try txn.get("chunks", key.key) else { continue }
                var chunk = try ChunkRecord(decoding: raw)
                let expected = expectedChunk[key] ?? 0
                if chunk.references != expected {
                    changes.append("chunk \(key): count \(chunk.references) -> \(expected)")
                    chunk.references = expected
                    try txn.put("chunks", key.key, chunk.encoded())
                }
                totals.chunks += 1
                totals.uniqueBytes += UInt64(chunk.location.rawSize)
                totals.storedBytes += chunk.location.recordSize
                var s = packStats[chunk.location.packID] ?? PackStats()
                s.liveBytes += chunk.location.recordSize
                s.liveChunks += 1
                packStats[chunk.location.packID] = s
                if expected == 0 { try GarbageQueue.push(txn, .chunk, key) } else { try GarbageQueue.remove(txn, .chunk, key) }
            }
            var blobKeys: [Digest] = []
            try txn.scan("blobs") { k, _ in blobKeys.append(Digest(bytes: k.baseAddress!)); return true }
            for digest in blobKeys {
                guard let blob = try Store.blob(txn, digest) else { continue }
                totals.blobs += 1
                totals.logicalBytes += blob.size
                if blob.isReferenced { try GarbageQueue.remove(txn, .blob, digest) } else { try GarbageQueue.push(txn, .blob, digest) }
            }
            if try Store.totals(txn) != totals {
                changes.append("store totals recomputed")
                try Store.setTotals(txn, totals)
            }
            // Pack accounting: live bytes recomputed; the rest of each file counts as dead.
            for (id, size) in try packs.packs() {
                var s = packStats[id] ?? PackStats()
                s.deadBytes = size > s.liveBytes + UInt64(PackFormat.headerSize) ? size - s.liveBytes - UInt64(PackFormat.headerSize) : 0
                if try Store.packStats(txn, id) != s {
                    try Store.setPackStats(txn, id, s)
                }
            }
            return changes
        }
    }
}
