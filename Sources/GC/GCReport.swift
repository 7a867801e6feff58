/// What a collection freed (or, for a dry run, would free).
public struct GCReport: Sendable, Codable, Equatable {
    public var dryRun: Bool

    public init(dryRun: Bool) { self.dryRun = dryRun }
    /// Blob records removed (unpinned blobs nothing refers to any more).
    public var blobsFreed: Int = 0
    /// Chunk records removed.
    public var chunksFreed: Int = 0
    /// Pack bytes those chunks took (headers included): what compaction can reclaim.
    public var bytesFreed: UInt64 = 0
    /// Garbage left for later because a live lease (an ingest in progress) may rely on it.
    public var deferred: Int = 0
    /// Pack files removed because nothing in them is used any more.
    public var packsRemoved: Int = 0
    public var packBytesRemoved: UInt64 = 0
    /// Seconds the removal of those packs took, after the index commit (in object storage:
    /// DeleteObjects requests of up to 1,000 keys).
    public var packRemovalSeconds: Double = 0
    /// Packs whose live chunks were copied out so the dead rest could be dropped.
    public var packsCompacted: Int = 0
    /// Disk bytes compaction gave back (or, for a dry run, would).
    public var compactionBytesReclaimed: UInt64 = 0
    /// The blobs freed, by what let go of them last ("images", "containers", "volumes",
    /// "uploads", "other"): how many, and their sizes (before dedup and compression).
    public var freedByKind: [String: FreedKind] = [:]

    public struct FreedKind: Sendable, Codable, Equatable {
        public var blobs = 0
        public var bytes: UInt64 = 0
    }
}

