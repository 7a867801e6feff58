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
        var errors = [BlobStoreError?](repeating: nil, count: indices.count)
        errors.withUnsafeMutableBufferPointer { errorSlots in
            let slots = errorSlots.baseAddress!
            parallelFor(indices.count) { j in
                let i = indices.lowerBound + j
                let start = Int(blob.chunkStart(i) - base)
                let length = Int(blob.chunkEnds[i] - blob.chunkStart(i))
                let target = UnsafeMutableRawBufferPointer(rebasing: out.buffer[start..<start + length])
                do {
                    let key = blob.chunks[i]
                    // A cached chunk passed its checks when it was read; --verify reads anew.
                    if !verify && cache.copy(key, into: target) { return }
                    try readChunk(key, at: locations[j], into: target, verify: verify)
                    cache.put(key, UnsafeRawBufferPointer(target))
                } catch let error as BlobStoreError {
                    slots[j] = BlobStoreError(error.code, "blob \(digest): chunk \(i) (\(blob.chunks[i])): \(error.message)", errno: error.errno)
                } catch {
                    slots[j] = BlobStoreError(.io, "blob \(digest): chunk \(i): \(error)")
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
}
