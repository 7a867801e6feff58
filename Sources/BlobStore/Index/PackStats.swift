/// Per-pack accounting, index value of `packs[packID]`: bytes the index points at (live) and
/// bytes it no longer needs (dead: removed chunks, duplicates written by racing ingests).
/// Bytes in the file beyond live + dead belong to ingests that never committed.
public struct PackStats: Sendable, Equatable {
    public var liveBytes: UInt64 = 0
    public var deadBytes: UInt64 = 0
    public var liveChunks: UInt64 = 0

    func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: 24)
        w.u64(liveBytes)
        w.u64(deadBytes)
        w.u64(liveChunks)
        return w.bytes
    }

    package init() {}

    package init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "pack stats")
        liveBytes = try r.u64()
        deadBytes = try r.u64()
        liveChunks = try r.u64()
    }
}

/// Store-wide totals kept current by every write transaction, so `df` costs O(1).
public struct StoreTotals: Sendable, Equatable, Codable {
    public var blobs: UInt64 = 0
    /// Sum of blob sizes.
    public var logicalBytes: UInt64 = 0
    /// Chunks with a record in the index (referenced or waiting for GC).
    public var chunks: UInt64 = 0
    /// Sum of chunk raw sizes.
    public var uniqueBytes: UInt64 = 0
    /// Sum of chunk record sizes in packs (headers included).
    public var storedBytes: UInt64 = 0

    func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: 40)
        for v in [blobs, logicalBytes, chunks, uniqueBytes, storedBytes] { w.u64(v) }
        return w.bytes
    }

    public init() {}

    package init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "totals")
        blobs = try r.u64()
        logicalBytes = try r.u64()
        chunks = try r.u64()
        uniqueBytes = try r.u64()
        storedBytes = try r.u64()
    }
}
