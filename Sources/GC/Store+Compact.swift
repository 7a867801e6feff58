import BlobStore
import Foundation

/// Pack compaction: the live records of a mostly-dead pack are copied to this process's
/// current pack, the index is switched to the copies in one transaction, and the old file
/// is unlinked afterwards.
///
/// Crash safety follows from the order: copies are durable before the switch commits; a
/// crash before the commit leaves unreferenced copies (collected later as dead bytes), a
/// crash after it leaves an old pack with nothing live (removed by the next `gc`).
///
/// Race safety: the caller claims the pack first (no process appends to it or adopts it
/// after that, and no unfinished ingest of a live process wrote to it: such a process
/// keeps it locked); only then are leases read, and a pack a live lease lists (a
/// checkpointed upload's records) is left alone. The copies are written as a unit of
/// writing of their own, so the packs they land in stay locked until the switch commits.
///
/// Settling is a compaction that also rewrites the records it copies at a strong level
/// (`ChunkRecompressor`), under the same rules.
extension Store {
    public struct CompactionResult: Sendable, Equatable, Codable {
        public var pack: UInt64
        public var chunksMoved: Int
        public var bytesMoved: UInt64
        public var bytesReclaimed: UInt64
        /// What the moved records took in the old pack (equal to `bytesMoved` unless settling).
        public var bytesBeforeMove: UInt64
    }

    /// Compacts pack `claim.id`, which the caller holds exclusively; nil when a live lease
    /// lists the pack. With `settling`, records not settled yet are rewritten by it.
    package func compact(_ claim: PackClaim, settling: ChunkRecompressor? = nil) throws -> CompactionResult? {
        let id = claim.id
        let size = claim.size
        let listed = try index.read { txn in try Store.leases(txn) }.contains { $0.packs.contains(id) && $0.isAlive(coordination) }
        if listed { return nil }
        // 1. Which records does the index still point at? Their payloads are gathered in
        //    one buffer (a pack is at most the size limit); settling reads them again a
        //    window at a time instead, so `at` counts bytes without keeping them.
        var live: [(offset: UInt64, record: PendingRecord, at: Int)] = []
        var gathered: [UInt8] = []
        var payloadBytes = 0
        _ = try index.read { txn in
            try PackScanner(backend: packs, id: id, size: size).scan { record in
                guard record.payloadIntact, let raw = try txn.get("chunks", record.header.key.key) else { return }
                let chunk = try ChunkRecord(decoding: raw)
                guard chunk.location.packID == id, chunk.location.offset == record.offset else { return }
                let pending = PendingRecord(key: record.header.key, flags: record.header.flags, rawSize: record.header.rawSize,
                                            payload: UnsafeRawBufferPointer(start: nil, count: 0), checksum: record.header.checksum,
                                            frameBack: record.header.frameBack)
                live.append((record.offset, pending, payloadBytes))
                payloadBytes += record.payload.count
                if settling == nil { gathered.append(contentsOf: record.payload) }
            }
        }
        // 2. Copy them, durably (settling: rewritten where not settled yet).
        var newLocations: [ChunkLocation] = []
        let writer = packs.beginWriting()
        defer { packs.endWriting(writer) }
        if let settling, !live.isEmpty {
            newLocations = try appendSettled(live, payloadBytes: payloadBytes, from: id, with: settling, for: writer)
            try packs.sync()
        } else if !live.isEmpty {
            // A frame's live members move without its dead ones: each is decoded and stored
            // on its own at the ingest level (the settler frames them again later).
            var unframed: [Int: (flags: ChunkFlags, range: Range<Int>)] = [:]
            var unframedBytes: [UInt8] = []
            let framed = live.indices.filter { live[$0].record.flags.contains(.framed) }
            let raws = decodeFramed(framed.map { i in
                (live[i].record.key, live[i].record.location(in: id, at: live[i].offset, storedSize: (i + 1 < live.count ? live[i + 1].at : payloadBytes) - live[i].at))
            }, parallel: false)
            for (i, raw) in zip(framed, raws) {
                // Undecodable: not moved, so the shortfall check below refuses the pack.
                guard let raw = try? raw.get() else { continue }
                let standalone = standaloneRecord(raw)
                unframed[i] = (standalone.flags, unframedBytes.count..<unframedBytes.count + standalone.payload.count)
                unframedBytes += standalone.payload
            }
            newLocations = try gathered.withUnsafeBytes { all in
                try unframedBytes.withUnsafeBytes { decoded in
                    var batch: [PendingRecord] = []
                    var moving: [(offset: UInt64, record: PendingRecord, at: Int)] = []
                    for (i, entry) in live.enumerated() {
                        var r = entry.record
                        if r.flags.contains(.framed) {
                            guard let standalone = unframed[i] else { continue }
                            r.flags = standalone.flags
                            r.frameBack = 0
                            r.payload = UnsafeRawBufferPointer(rebasing: decoded[standalone.range])
                            r.checksum = CRC32C.checksum(r.payload)
                        } else {
                            let end = i + 1 < live.count ? live[i + 1].at : all.count
                            r.payload = UnsafeRawBufferPointer(rebasing: all[entry.at..<end])
                        }
                        batch.append(r)
                        moving.append(entry)
                    }
                    live = moving
                    return try packs.append(batch, for: writer)
                }
            }
            try packs.sync()
        }
        // 3. Switch the index to the copies, where it still points at the originals.
        var moved = 0
        var bytesMoved: UInt64 = 0
        var bytesBefore: UInt64 = 0
        let switched: Bool
        do {
            switched = try compactionSwitch(id: id, live: live, newLocations: newLocations, moved: &moved, bytesMoved: &bytesMoved, bytesBefore: &bytesBefore)
        } catch let shortfall as CompactionShortfall {
            // The copies stay behind as dead bytes, as after a crash before the switch.
            logger.warning("pack not compacted: its scan found another number of live chunks than the index counts in it; run `blobctl fsck --repair`",
                           metadata: ["pack": "\(PackFormat.fileName(for: id))", "found": "\(shortfall.found)", "accounted": "\(shortfall.accounted)"])
            return nil
        }
        if !switched { return nil }
        // 4. Nothing points into the old pack any more.
        try packs.remove(pack: id)
        withExtendedLifetime(claim) {}
        return CompactionResult(pack: id, chunksMoved: moved, bytesMoved: bytesMoved, bytesReclaimed: size > bytesMoved ? size - bytesMoved : 0,
                                bytesBeforeMove: bytesBefore)
    }

    /// Step 2 when settling: the live records, those not settled yet rewritten by
    /// `recompressor` into frames of consecutive chunks (on all cores or not, as it says),
    /// a window of records at a time: read from the claimed pack (CRC checked again),
    /// rewritten, appended. So one window of old and new payloads is in memory, whatever
    /// the pack's size. Members of frames written earlier are decoded and framed again with
    /// their new neighbours. A record whose bytes do not hash to its key is copied as it is.
    private func appendSettled(_ live: [(offset: UInt64, record: PendingRecord, at: Int)], payloadBytes: Int, from pack: UInt64,
                               with recompressor: ChunkRecompressor, for writer: PackWriter) throws -> [ChunkLocation] {
        let window = 128
        func each(_ count: Int, _ body: (Int) -> Void) {
            if recompressor.parallel { parallelFor(count, body) } else { for i in 0..<count { body(i) } }
        }
        // Chunks outside frames that settling recompresses: not settled yet, not empty, and
        // compressed at ingest (the rest ingest found incompressible), or all of them when
        // ingest stores raw.
        let level = config.compressionLevel
        func recompresses(_ r: PendingRecord) -> Bool {
            !r.flags.contains(.framed) && !r.flags.contains(.settled) && r.rawSize > 0 && (r.flags.contains(.zstd) || level == 0)
        }
        var locations: [ChunkLocation] = []
        locations.reserveCapacity(live.count)
        var start = 0
        while start < live.count {
            let end = min(start + window, live.count)
            let count = end - start
            let base = live[start].at
            func range(_ i: Int) -> Range<Int> { (live[i].at - base)..<((i + 1 < live.count ? live[i + 1].at : payloadBytes) - base) }
            var old = [UInt8](repeating: 0, count: range(end - 1).upperBound)
            try old.withUnsafeMutableBytes { buffer in
                for i in start..<end {
                    let target = UnsafeMutableRawBufferPointer(rebasing: buffer[range(i)])
                    let n = try packs.read(pack: pack, at: live[i].offset + UInt64(PackFormat.recordHeaderSize), into: target)
                    guard n == target.count, CRC32C.checksum(UnsafeRawBufferPointer(target)) == live[i].record.checksum else {
                        throw BlobStoreError(.corrupt, "pack \(PackFormat.fileName(for: pack)) offset \(live[i].offset): record changed while it was settled")
                    }
                }
            }
            try old.withUnsafeBytes { all in
                func payload(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: all[range(i)]) }
                // 1. The raw bytes of every record to be (re)framed. Kept as they are:
                //    settled records outside frames, empty ones, those ingest found
                //    incompressible, and damaged ones.
                var raws = [[UInt8]?](repeating: nil, count: count)
                let framed = (0..<count).filter { live[start + $0].record.flags.contains(.framed) }
                let decoded = decodeFramed(framed.map { j in
                    (live[start + j].record.key, live[start + j].record.location(in: pack, at: live[start + j].offset, storedSize: range(start + j).count))
                }, parallel: recompressor.parallel)
                var failure: Error?
                for (j, raw) in zip(framed, decoded) {
                    switch raw {
                    case .success(let bytes): raws[j] = bytes
                    case .failure(let error): failure = failure ?? error
                    }
                }
                // A frame that does not decode cannot be copied piecemeal: leave the pack.
                if let failure {
                    throw BlobStoreError(.corrupt, "pack \(PackFormat.fileName(for: pack)): a frame does not decode, left for fsck: \(failure)")
                }
                raws.withUnsafeMutableBufferPointer { rawSlots in
                    let rawBase = rawSlots.baseAddress!
                    each(count) { j in
                        let r = live[start + j].record
                        guard recompresses(r), !recompressor.shouldStop() else { return }
                        rawBase[j] = recompressor.rawBytes(of: .init(key: r.key, flags: r.flags, rawSize: r.rawSize, payload: payload(start + j)))
                    }
                }
                if recompressor.shouldStop() { throw SettlingStopped() }
                // 2. Frames: runs of consecutive records with raw bytes, cut at the frame size.
                var frames: [Range<Int>] = []
                var j = 0
                while j < count {
                    guard raws[j] != nil else { j += 1; continue }
                    var k = j
                    var bytes = 0
                    while k < count, let raw = raws[k], bytes < recompressor.frameSize {
                        bytes += raw.count
                        k += 1
                    }
                    frames.append(j..<k)
                    j = k
                }
                var pieces = [[[UInt8]]?](repeating: nil, count: frames.count)
                pieces.withUnsafeMutableBufferPointer { out in
                    let outBase = out.baseAddress!
                    each(frames.count) { f in
                        guard !recompressor.shouldStop() else { return }
                        outBase[f] = recompressor.frame(frames[f].map { raws[$0]! })
                    }
                }
                // Abandoned: what earlier windows appended is unreferenced, as after a crash.
                if recompressor.shouldStop() { throw SettlingStopped() }
                // 3. The records, in pack order.
                var bytes: [UInt8] = []
                var records: [PendingRecord] = []
                var starts: [Int] = []
                var frameOf = [Int?](repeating: nil, count: count)
                for (f, members) in frames.enumerated() { for j in members { frameOf[j] = f } }
                var frameBack = 0
                for j in 0..<count {
                    var record = live[start + j].record
                    starts.append(bytes.count)
                    record.frameBack = 0
                    if let f = frameOf[j] {
                        let member = j - frames[f].lowerBound
                        if let framePieces = pieces[f] {
                            if member == 0 { frameBack = 0 }
                            record.flags = [.zstd, .settled, .framed]
                            record.frameBack = UInt32(frameBack)
                            frameBack += PackFormat.recordHeaderSize + framePieces[member].count
                            bytes += framePieces[member]
                        } else {
                            record.flags = [.settled] // does not compress: raw
                            bytes += raws[j]!
                        }
                        record.checksum = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[starts[j]...])) }
                    } else {
                        // Settled already, empty, incompressible or damaged (one it would
                        // have recompressed, yet has no bytes for): unchanged.
                        if !recompresses(record) { record.flags.insert(.settled) }
                        bytes.append(contentsOf: payload(start + j))
                    }
                    records.append(record)
                }
                locations += try bytes.withUnsafeBytes { b in
                    for j in records.indices {
                        records[j].payload = UnsafeRawBufferPointer(rebasing: b[starts[j]..<(j + 1 < starts.count ? starts[j + 1] : b.count)])
                    }
                    return try packs.append(records, for: writer)
                }
            }
            start = end
        }
        return locations
    }

    /// Step 3 of `compact`: in one transaction, points every chunk found live in pack `id`
    /// at its copy; false when a live lease lists the pack (nothing switched).
    private func compactionSwitch(id: UInt64, live: [(offset: UInt64, record: PendingRecord, at: Int)], newLocations: [ChunkLocation],
                                  moved: inout Int, bytesMoved: inout UInt64, bytesBefore: inout UInt64) throws -> Bool {
        try index.write { txn throws -> Bool in
            var stats: [UInt64: PackStats] = [:]
            var totals = try Store.totals(txn)
            // A lease judged dead here is ended here, so its holder cannot commit later.
            let listed = try endDeadLeases(txn).contains { $0.packs.contains(id) }
            for (entry, location) in zip(live, newLocations) {
                var n = try stats[location.packID] ?? Store.packStats(txn, location.packID)
                let k = entry.record.key.key
                if !listed, let raw = try txn.get("chunks", k), var chunk = try? ChunkRecord(decoding: raw),
                   chunk.location.packID == id, chunk.location.offset == entry.offset {
                    bytesBefore += chunk.location.recordSize
                    // Settled copies differ in size from the originals.
                    totals.storedBytes = totals.storedBytes - min(chunk.location.recordSize, totals.storedBytes) + location.recordSize
                    chunk.location = location
                    try txn.put("chunks", k, chunk.encoded())
                    n.liveBytes += location.recordSize
                    n.liveChunks += 1
                    stats[location.packID] = n
                    moved += 1
                    bytesMoved += location.recordSize
                } else {
                    n.deadBytes += location.recordSize
                    stats[location.packID] = n
                }
            }
            if !listed {
                // Every chunk the index counts in this pack must have been found and moved;
                // one the scan missed would be lost with the file. Refuse instead.
                let accounted = try Store.packStats(txn, id).liveChunks
                if UInt64(moved) != accounted { throw CompactionShortfall(found: moved, accounted: accounted) }
            }
            for (p, s) in stats where p != id { try Store.setPackStats(txn, p, s) }
            if listed { return false }
            try Store.setTotals(txn, totals)
            try txn.delete("packs", id.bigEndianKey)
            return true
        }
    }
}

/// Compaction found another number of live records in a pack than the index counts there.
struct CompactionShortfall: Error {
    var found: Int
    var accounted: UInt64
}

extension PendingRecord {
    /// Where this record, found at `offset` of pack `pack`, lies (its payload `storedSize` long).
    func location(in pack: UInt64, at offset: UInt64, storedSize: Int) -> ChunkLocation {
        ChunkLocation(packID: pack, offset: offset, storedSize: UInt32(storedSize), rawSize: rawSize, flags: flags, checksum: checksum, frameBack: frameBack)
    }
}
