import Dispatch

extension Store {
    /// Streams a blob, or the byte range `range` of it, to `sink` in order.
    ///
    /// Chunks are fetched, checked and decompressed in batches spread over all cores; memory
    /// stays at one batch whatever the blob's size. Every chunk's pack record is checked
    /// (header CRC, key, payload CRC32C) and, with `verify`, its SHA-256 too: damaged bytes
    /// are an error naming the blob and the chunk, never wrong data.
    public func read(_ digest: Digest, range: Range<UInt64>? = nil, verify: Bool = false,
                     to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let stream = try BlobStream(store: self, digest: digest, range: range, verify: verify)
        while try stream.next(sink) {}
    }

    /// Reads a whole blob into memory. For small blobs (manifests, configs) and tests.
    public func readAll(_ digest: Digest, verify: Bool = false) throws -> [UInt8] {
        var out: [UInt8] = []
        try read(digest, verify: verify) { out.append(contentsOf: $0) }
        return out
    }

    /// The blob's record, recipe included.
    public func blobRecord(_ digest: Digest) throws -> BlobRecord {
        try index.read { txn in
            guard let raw = try txn.get("blobs", digest.key) else {
                throw BlobStoreError(.notFound, "blob \(digest) not found")
            }
            return try BlobRecord(decoding: raw)
        }
    }

    /// Fetches, checks and decompresses chunks `indices` of `blob`, laid out back to back.
    package func readChunks(of blob: BlobRecord, digest: Digest, indices: Range<Int>, into buffer: UnsafeMutableRawBufferPointer, verify: Bool) throws {
        let locations = try index.read { txn throws -> [ChunkLocation] in
            var result: [ChunkLocation] = []
            result.reserveCapacity(indices.count)
            for i in indices {
                guard let raw = try txn.get("chunks", blob.chunks[i].key) else {
                    throw BlobStoreError(.corrupt, "blob \(digest): chunk \(i) (\(blob.chunks[i])) is missing from the index")
                }
                result.append(try ChunkRecord(decoding: raw).location)
            }
            return result
        }
        let base = blob.chunkStart(indices.lowerBound)
        let out = SendableMutableBuffer(buffer: buffer)
        let cache = chunkCache
        func target(_ j: Int) -> UnsafeMutableRawBufferPointer {
            let i = indices.lowerBound + j
            let start = Int(blob.chunkStart(i) - base)
            return UnsafeMutableRawBufferPointer(rebasing: out.buffer[start..<start + Int(blob.chunkEnds[i] - blob.chunkStart(i))])
        }
        // Units of reading: a chunk alone, or the wanted members of one frame, decoded once.
        var units: [[Int]] = []
        var frameUnits: [PackPosition: Int] = [:]
        for (j, location) in locations.enumerated() {
            if location.flags.contains(.framed) {
                let frame = PackPosition(pack: location.packID, offset: location.frameStart)
                if let u = frameUnits[frame] { units[u].append(j); continue }
                frameUnits[frame] = units.count
            }
            units.append([j])
        }
        var errors = [BlobStoreError?](repeating: nil, count: indices.count)
        errors.withUnsafeMutableBufferPointer { errorSlots in
            let slots = errorSlots.baseAddress!
            parallelFor(units.count) { u in
                // A cached chunk passed its checks when it was read; --verify reads anew.
                let misses = units[u].filter { j in verify || !cache.copy(blob.chunks[indices.lowerBound + j], into: target(j)) }
                if misses.isEmpty { return }
                do {
                    if misses.count == 1 {
                        try readChunk(blob.chunks[indices.lowerBound + misses[0]], at: locations[misses[0]], into: target(misses[0]), verify: verify)
                    } else {
                        try readFramed(misses.map { (blob.chunks[indices.lowerBound + $0], locations[$0], target($0)) }, verify: verify)
                    }
                    for j in misses { cache.put(blob.chunks[indices.lowerBound + j], UnsafeRawBufferPointer(target(j))) }
                } catch {
                    for j in misses {
                        let i = indices.lowerBound + j
                        if let error = error as? BlobStoreError {
                            slots[j] = BlobStoreError(error.code, "blob \(digest): chunk \(i) (\(blob.chunks[i])): \(error.message)", errno: error.errno)
                        } else {
                            slots[j] = BlobStoreError(.io, "blob \(digest): chunk \(i): \(error)")
                        }
                    }
                }
            }
        }
        // A chunk may have moved (compaction) between the location lookup and the read:
        // look such chunks up again and retry once before calling it damage.
        let failed = errors.indices.filter { errors[$0] != nil }
        if failed.isEmpty { return }
        let fresh = try index.read { txn in
            try failed.map { j -> ChunkLocation? in
                guard let raw = try txn.get("chunks", blob.chunks[indices.lowerBound + j].key) else { return nil }
                return try ChunkRecord(decoding: raw).location
            }
        }
        for (j, location) in zip(failed, fresh) {
            guard let location, location != locations[j] else { throw errors[j]! }
            let i = indices.lowerBound + j
            let start = Int(blob.chunkStart(i) - base)
            let length = Int(blob.chunkEnds[i] - blob.chunkStart(i))
            do {
                try readChunk(blob.chunks[i], at: location, into: UnsafeMutableRawBufferPointer(rebasing: buffer[start..<start + length]), verify: verify)
            } catch let error as BlobStoreError {
                throw BlobStoreError(error.code, "blob \(digest): chunk \(i) (\(blob.chunks[i])): \(error.message)", errno: error.errno)
            }
        }
    }

    /// Reads one chunk's record from its pack and checks it: the header's magic and CRC, the
    /// key and sizes against the index, the payload CRC, and optionally the raw SHA-256.
    package func readChunk(_ key: Digest, at location: ChunkLocation, into target: UnsafeMutableRawBufferPointer, verify: Bool) throws {
        guard Int(location.rawSize) == target.count else {
            throw BlobStoreError(.corrupt, "index says \(location.rawSize) bytes, recipe says \(target.count)")
        }
        if location.flags.contains(.framed) {
            return try readFramed([(key, location, target)], verify: verify)
        }
        let recordSize = Int(location.recordSize)
        try scratchBuffers.withElement { pooled in
            let scratch = UnsafeMutableRawBufferPointer(rebasing: try pooled.buffer(atLeast: recordSize)[..<recordSize])
            try readRecord(key, location, scratch, into: target, verify: verify)
        }
    }

    private func readRecord(_ key: Digest, _ location: ChunkLocation, _ scratch: UnsafeMutableRawBufferPointer,
                            into target: UnsafeMutableRawBufferPointer, verify: Bool) throws {
        let recordSize = scratch.count
        let n = try packs.read(pack: location.packID, at: location.offset, into: scratch)
        let place = "pack \(PackFormat.fileName(for: location.packID)) offset \(location.offset)"
        guard n == recordSize else {
            throw BlobStoreError(.corrupt, "\(place): record is truncated (\(n) of \(recordSize) bytes)")
        }
        guard let header = PackFormat.parseRecordHeader(scratch.baseAddress!) else {
            throw BlobStoreError(.corrupt, "\(place): record header is damaged")
        }
        guard header.key == key, header.storedSize == location.storedSize, header.rawSize == location.rawSize else {
            throw BlobStoreError(.corrupt, "\(place): record holds a different chunk (\(header.key))")
        }
        let payload = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[PackFormat.recordHeaderSize...])
        guard CRC32C.checksum(payload) == header.checksum else {
            throw BlobStoreError(.corrupt, "\(place): checksum mismatch (damaged pack bytes)")
        }
        if header.flags.contains(.zstd) {
            let produced = try decompressors.withElement { (d) throws -> Int in try d.decompress(payload, into: target) }
            guard produced == target.count else {
                throw BlobStoreError(.corrupt, "\(place): decompressed to \(produced) bytes, expected \(target.count)")
            }
        } else if payload.count > 0 {
            target.copyMemory(from: payload)
        }
        if verify {
            let actual = SHA256Hasher.hash(UnsafeRawBufferPointer(target))
            guard actual == key else {
                throw BlobStoreError(.corrupt, "\(place): content hashes to \(actual), not to its key")
            }
        }
    }

    /// Reads members of one frame (same pack, same `frameStart`) into their targets: the
    /// frame's records from its first up to the last one wanted are read in one go, each
    /// checked (header CRC, its place in the frame, payload CRC) and decoded in order. The
    /// members decoded on the way that nobody asked for go to the chunk cache, if on.
    package func readFramed(_ wanted: [(key: Digest, location: ChunkLocation, target: UnsafeMutableRawBufferPointer)], verify: Bool) throws {
        guard let first = wanted.first else { return }
        let pack = first.location.packID
        let start = first.location.frameStart
        let end = wanted.map { $0.location.offset + $0.location.recordSize }.max()!
        let length = Int(end - start)
        var wantedAt: [UInt64: [Int]] = [:]
        for (w, member) in wanted.enumerated() {
            guard Int(member.location.rawSize) == member.target.count else {
                throw BlobStoreError(.corrupt, "index says \(member.location.rawSize) bytes, recipe says \(member.target.count)")
            }
            wantedAt[member.location.offset, default: []].append(w)
        }
        let cacheOthers = chunkCache.isEnabled
        try scratchBuffers.withElement { pooled in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: try pooled.buffer(atLeast: length)[..<length])
            let n = try packs.read(pack: pack, at: start, into: bytes)
            let frameName = "pack \(PackFormat.fileName(for: pack)) frame at \(start)"
            guard n == length else { throw BlobStoreError(.corrupt, "\(frameName): truncated (\(n) of \(length) bytes)") }
            // 1. Every record up to the last one wanted, checked.
            var members: [(offset: UInt64, header: PackFormat.RecordHeader, payload: Range<Int>, rawStart: Int)] = []
            var cursor = 0, rawTotal = 0
            while cursor < length {
                let place = "pack \(PackFormat.fileName(for: pack)) offset \(start + UInt64(cursor))"
                guard cursor + PackFormat.recordHeaderSize <= length, let header = PackFormat.parseRecordHeader(bytes.baseAddress! + cursor) else {
                    throw BlobStoreError(.corrupt, "\(place): record header is damaged")
                }
                let payloadStart = cursor + PackFormat.recordHeaderSize
                let payload = payloadStart..<payloadStart + Int(header.storedSize)
                guard header.flags.contains(.framed), Int(header.frameBack) == cursor, payload.upperBound <= length else {
                    throw BlobStoreError(.corrupt, "\(place): not the next record of \(frameName)")
                }
                guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[payload])) == header.checksum else {
                    throw BlobStoreError(.corrupt, "\(place): checksum mismatch (damaged pack bytes)")
                }
                members.append((start + UInt64(cursor), header, payload, rawTotal))
                rawTotal += Int(header.rawSize)
                cursor = payload.upperBound
            }
            // When every record decoded is wanted, once and in order, and their targets lie
            // back to back (a whole frame of a blob read in order: pulls, and the middle and
            // last frames of a range read), zstd decodes straight into the targets instead
            // of into scratch and a copy. Their headers are checked first: a wrong size must
            // fail before zstd writes, not after.
            let direct = members.count == wanted.count && members.indices.allSatisfy { k in
                members[k].offset == wanted[k].location.offset
                    && (k == 0 || wanted[k].target.baseAddress == wanted[k - 1].target.baseAddress.map { $0 + wanted[k - 1].target.count })
            }
            if direct {
                for (member, w) in zip(members, wanted) {
                    try Store.checkFramedMember(member.header, at: member.offset, in: pack, is: w.key, w.location)
                }
            }
            try scratchBuffers.withElement { second in
                // 2. Their pieces back to back (zstd decodes one contiguous input faster
                //    than the same bytes in parts), and one pass of zstd over them.
                let piecesTotal = members.reduce(0) { $0 + $1.payload.count }
                let area = try second.buffer(atLeast: piecesTotal + (direct ? 0 : rawTotal))
                let pieces = UnsafeMutableRawBufferPointer(rebasing: area[..<piecesTotal])
                let raw = direct
                    ? UnsafeMutableRawBufferPointer(start: first.target.baseAddress, count: rawTotal)
                    : UnsafeMutableRawBufferPointer(rebasing: area[piecesTotal..<piecesTotal + rawTotal])
                var at = 0
                for member in members where !member.payload.isEmpty {
                    (pieces.baseAddress! + at).copyMemory(from: bytes.baseAddress! + member.payload.lowerBound, byteCount: member.payload.count)
                    at += member.payload.count
                }
                try frameDecoders.withElement { decoder in
                    do {
                        try decoder.decodePrefix([UnsafeRawBufferPointer(pieces)], into: raw)
                    } catch let e as BlobStoreError {
                        throw BlobStoreError(.corrupt, "\(frameName): \(e.message)")
                    }
                }
                // 3. Each wanted member to its target; the others to the cache, if on.
                for member in members {
                    let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(raw)[member.rawStart..<member.rawStart + Int(member.header.rawSize)])
                    guard let ws = wantedAt[member.offset] else {
                        if cacheOthers { chunkCache.put(member.header.key, bytes) }
                        continue
                    }
                    let place = "pack \(PackFormat.fileName(for: pack)) offset \(member.offset)"
                    let first = wanted[ws[0]]
                    try Store.checkFramedMember(member.header, at: member.offset, in: pack, is: first.key, first.location)
                    if verify {
                        let actual = SHA256Hasher.hash(bytes)
                        guard actual == first.key else { throw BlobStoreError(.corrupt, "\(place): content hashes to \(actual), not to its key") }
                    }
                    if !direct { for w in ws { wanted[w].target.copyMemory(from: bytes) } }
                }
            }
        }
    }

    /// A framed record's header against what the index says is there.
    private static func checkFramedMember(_ header: PackFormat.RecordHeader, at offset: UInt64, in pack: UInt64,
                                          is key: Digest, _ location: ChunkLocation) throws {
        guard header.key == key, header.storedSize == location.storedSize, header.rawSize == location.rawSize else {
            throw BlobStoreError(.corrupt, "pack \(PackFormat.fileName(for: pack)) offset \(offset): record holds a different chunk (\(header.key))")
        }
    }
}
