/// A blob: its size, its media type when known, whether a user pinned it, how many objects
/// refer to it, and its recipe — the ordered chunk list with cumulative end offsets, so a
/// range read finds its first chunk by binary search. Index value of `blobs[digest]`.
public struct BlobRecord: Sendable, Equatable {
    public var size: UInt64
    public var mediaType: String?
    /// Held by `blobctl put`/`rm` directly; a pinned blob is a root of its own.
    public var pinned: Bool
    /// Edges from other objects (manifests, containers, volumes).
    public var references: UInt64
    /// Seconds since 1970.
    public var createdAt: UInt64
    public var chunks: [Digest]
    /// `chunkEnds[i]` is the blob offset just past chunk i.
    public var chunkEnds: [UInt64]
    /// Length of the recipe (known even when the record was decoded without it).
    public private(set) var chunkCount: Int

    static let formatVersion: UInt8 = 1

    /// Index of the chunk that holds blob offset `offset` (which must be < size).
    public func chunkIndex(containing offset: UInt64) -> Int {
        var low = 0, high = chunkEnds.count - 1
        while low < high {
            let mid = (low + high) / 2
            if chunkEnds[mid] <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }

    public func chunkStart(_ i: Int) -> UInt64 { i == 0 ? 0 : chunkEnds[i - 1] }

    package func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: 48 + chunks.count * 40)
        w.u8(BlobRecord.formatVersion)
        w.u8(pinned ? 1 : 0)
        w.u64(size)
        w.u64(references)
        w.u64(createdAt)
        w.string(mediaType ?? "")
        w.u32(UInt32(chunks.count))
        for (key, end) in zip(chunks, chunkEnds) {
            w.digest(key)
            w.u64(end)
        }
        return w.bytes
    }

    init(size: UInt64, mediaType: String?, pinned: Bool, references: UInt64, createdAt: UInt64, chunks: [Digest], chunkEnds: [UInt64]) {
        self.size = size
        self.mediaType = mediaType
        self.pinned = pinned
        self.references = references
        self.createdAt = createdAt
        self.chunks = chunks
        self.chunkEnds = chunkEnds
        chunkCount = chunks.count
    }

    package init(decoding raw: UnsafeRawBufferPointer, recipe: Bool = true) throws {
        var r = BinaryReader(raw, what: "blob")
        let version = try r.u8()
        guard version == BlobRecord.formatVersion else {
            throw BlobStoreError(.unsupportedFormat, "blob record version \(version) is not supported")
        }
        pinned = try r.u8() != 0
        size = try r.u64()
        references = try r.u64()
        createdAt = try r.u64()
        let type = try r.string()
        mediaType = type.isEmpty ? nil : type
        let count = Int(try r.u32())
        chunkCount = count
        chunks = []
        chunkEnds = []
        if recipe {
            chunks.reserveCapacity(count)
            chunkEnds.reserveCapacity(count)
            for _ in 0..<count {
                chunks.append(try r.digest())
                chunkEnds.append(try r.u64())
            }
            guard chunkEnds.last ?? 0 == size else {
                throw BlobStoreError(.corrupt, "blob record recipe ends at \(chunkEnds.last ?? 0), size is \(size)")
            }
        }
    }

    /// Whether anything still holds the blob.
    package var isReferenced: Bool { pinned || references > 0 }
}
