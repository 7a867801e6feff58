/// What `stat` and `ls` show of a blob.
public struct BlobInfo: Sendable, Equatable, Codable {
    public var digest: Digest
    public var size: UInt64
    public var mediaType: String?
    public var chunkCount: Int
    public var pinned: Bool
    public var references: UInt64
    public var createdAt: UInt64
}

/// What removing a blob did.
public struct RemoveResult: Sendable, Equatable, Codable {
    public var digest: Digest
    /// False when other objects still refer to the blob: only the pin was dropped.
    public var removed: Bool
    /// Chunks that no blob uses any more, now waiting for GC.
    public var chunksReleased: Int
    public var references: UInt64
}

extension Store {
    public func contains(_ digest: Digest) throws -> Bool {
        try index.read { txn in try txn.get("blobs", digest.key) != nil }
    }

    public func stat(_ digest: Digest) throws -> BlobInfo {
        try index.read { txn in
            guard let raw = try txn.get("blobs", digest.key) else {
                throw BlobStoreError(.notFound, "blob \(digest) not found")
            }
            return try Store.info(digest, raw)
        }
    }

    private static func info(_ digest: Digest, _ raw: UnsafeRawBufferPointer) throws -> BlobInfo {
        let b = try BlobRecord(decoding: raw, recipe: false)
        return BlobInfo(digest: digest, size: b.size, mediaType: b.mediaType, chunkCount: b.chunkCount, pinned: b.pinned, references: b.references, createdAt: b.createdAt)
    }

    /// Every blob, in digest order.
    public func list() throws -> [BlobInfo] {
        try index.read { txn in
            var result: [BlobInfo] = []
            try txn.scan("blobs") { k, v in
                guard k.count == 32 else { return true }
                result.append(try Store.info(Digest(bytes: k.baseAddress!), v))
                return true
            }
            return result
        }
    }

    /// Drops the blob's pin. When nothing else refers to it, the blob record goes and each
    /// chunk's count drops; chunks no blob uses any more join the garbage queue for `gc`.
    public func remove(_ digest: Digest) throws -> RemoveResult {
        try index.write { txn in
            guard let raw = try txn.get("blobs", digest.key) else {
                throw BlobStoreError(.notFound, "blob \(digest) not found")
            }
            var blob = try BlobRecord(decoding: raw)
            if blob.references > 0 {
                if blob.pinned {
                    blob.pinned = false
                    try txn.put("blobs", digest.key, blob.encoded())
                }
                return RemoveResult(digest: digest, removed: false, chunksReleased: 0, references: blob.references)
            }
            let released = try Store.deleteBlob(txn, digest, blob)
            return RemoveResult(digest: digest, removed: true, chunksReleased: released, references: 0)
        }
    }

    /// Deletes a blob record and releases its chunks; returns how many chunks reached zero.
    package static func deleteBlob(_ txn: borrowing IndexTransaction, _ digest: Digest, _ blob: BlobRecord, origin: GarbageQueue.Origin = .other) throws -> Int {
        var released = 0
        var counts: [Digest: ChunkRecord] = [:]
        for key in blob.chunks {
            var chunk: ChunkRecord
            if let c = counts[key] {
                chunk = c
            } else {
                guard let raw = try txn.get("chunks", key.key) else {
                    throw BlobStoreError(.corrupt, "blob \(digest): chunk \(key) is missing from the index")
                }
                chunk = try ChunkRecord(decoding: raw)
            }
            guard chunk.references > 0 else {
                throw BlobStoreError(.corrupt, "blob \(digest): count of chunk \(key) would drop below zero; run `blobctl fsck --repair`")
            }
            chunk.references -= 1
            counts[key] = chunk
        }
        for (key, chunk) in counts {
            try txn.put("chunks", key.key, chunk.encoded())
            if chunk.references == 0 {
                try GarbageQueue.push(txn, .chunk, key)
                released += 1
            }
        }
        try txn.delete("blobs", digest.key)
        try txn.delete("layers", digest.key)
        try txn.delete("holds", digest.key)
        try GarbageQueue.remove(txn, .blob, digest)
        // A manifest's references to its config, layers and child manifests go with it.
        if let children = try edges(txn, of: digest) {
            try txn.delete("edges", digest.key)
            for child in children { try release(txn, child, origin: origin) } // its children go for the same reason
        }
        var totals = try Store.totals(txn)
        totals.blobs -= 1
        totals.logicalBytes -= blob.size
        try Store.setTotals(txn, totals)
        return released
    }
}
