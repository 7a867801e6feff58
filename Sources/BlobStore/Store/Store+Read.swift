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
        let blob = try blobRecord(digest)
        let wanted = range ?? 0..<blob.size
        guard wanted.lowerBound <= wanted.upperBound, wanted.upperBound <= blob.size else {
            throw BlobStoreError(.invalidArgument, "range \(wanted.lowerBound)-\(wanted.upperBound) is outside blob \(digest) of \(blob.size) bytes")
        }
        if wanted.isEmpty { return }
        let first = blob.chunkIndex(containing: wanted.lowerBound)
        let last = blob.chunkIndex(containing: wanted.upperBound - 1)
        let batchBytes = 8 << 20
        // One buffer for every batch of this read (a batch is at most 8 MiB + one chunk).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: batchBytes + config.chunking.maxSize, alignment: 64)
        defer { buffer.deallocate() }
        var next = first
        while next <= last {
            // A batch: consecutive chunks up to ~8 MiB of raw bytes.
            var end = next
            var bytes: UInt64 = 0
            while end <= last && (end == next || bytes < UInt64(batchBytes)) {
                bytes += blob.chunkEnds[end] - blob.chunkStart(end)
                end += 1
            }
            let batch = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(bytes)])
            try readChunks(of: blob, digest: digest, indices: next..<end, into: batch, verify: verify)
            // Trim the batch to the requested range.
            let batchStart = blob.chunkStart(next)
            let from = Int(max(wanted.lowerBound, batchStart) - batchStart)
            let to = Int(min(wanted.upperBound, blob.chunkEnds[end - 1]) - batchStart)
            try sink(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(batch)[from..<to]))
            next = end
        }
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
    private func readChunks(of blob: BlobRecord, digest: Digest, indices: Range<Int>, into buffer: UnsafeMutableRawBufferPointer, verify: Bool) throws {
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
        var errors = [BlobStoreError?](repeating: nil, count: indices.count)
        errors.withUnsafeMutableBufferPointer { errorSlots in
            let slots = errorSlots.baseAddress!
            parallelFor(indices.count) { j in
                let i = indices.lowerBound + j
                let start = Int(blob.chunkStart(i) - base)
                let length = Int(blob.chunkEnds[i] - blob.chunkStart(i))
                let target = UnsafeMutableRawBufferPointer(rebasing: out.buffer[start..<start + length])
                do {
                    try readChunk(blob.chunks[i], at: locations[j], into: target, verify: verify)
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
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: recordSize, alignment: 64)
        defer { scratch.deallocate() }
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
