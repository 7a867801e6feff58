import BlobStore
import Foundation

/// The second tier of compression. Ingest writes chunks at the store's fast level; the
/// settler rewrites packs holding chunks not settled yet at the strong level
/// (`StoreConfig.settledLevel`), one pack at a time, as a compaction that recompresses
/// (`Store.compact(_:settling:)`): copies durable first, the index switched in one
/// transaction, the old pack unlinked last. A kill at any instant loses nothing.
///
/// Each pack is settled under the store's maintenance lock, taken for that pack only, so a
/// `gc` or `fsck` of another process waits for one pack at most, never for a whole run.
public struct Settler: Sendable {
    public let store: Store
    /// zstd level of the rewrite.
    public var level: Int
    /// A pack is rewritten once at least this share of its live bytes is not settled.
    public var threshold: Double
    /// Recompress on all cores, or only on the calling thread.
    public var parallel: Bool
    /// Raw bytes of consecutive chunks compressed as one frame (see `PackFormat`). Bigger
    /// frames compress better (more context) and cost more to read one chunk from: on the
    /// image corpus at level 19, 512 KiB frames store 7% less than one frame per 128 KiB
    /// chunk (2 MiB: 15% less).
    public var frameSize: Int

    public static let defaultFrameSize = 512 << 10

    public init(store: Store, level: Int? = nil, threshold: Double = 0.1, parallel: Bool = true, frameSize: Int = Settler.defaultFrameSize) {
        self.store = store
        self.level = level ?? store.config.settledLevel
        self.threshold = threshold
        self.parallel = parallel
        self.frameSize = frameSize
    }

    public struct Report: Sendable, Codable, Equatable {
        public var packsSettled = 0
        public var chunksMoved = 0
        /// Pack bytes of the moved records before and after (headers included).
        public var bytesBefore: UInt64 = 0
        public var bytesAfter: UInt64 = 0
        /// Packs left for a later run: locked by a writer, or listed by a live lease.
        public var packsSkipped = 0
        public init() {}
    }

    /// A pack with chunks to settle.
    public struct Candidate: Sendable, Equatable {
        public var pack: UInt64
        public var liveBytes: UInt64
        public var unsettledBytes: UInt64
    }

    /// Packs whose unsettled share of live bytes reaches the threshold: those under half
    /// the pack size first (a writer adopts such a pack to append to, and the settler's
    /// copies must not land in a pack it has yet to rewrite), then most unsettled bytes
    /// first. One pass over the chunk index.
    public func candidates() throws -> [Candidate] {
        var byPack: [UInt64: Candidate] = [:]
        try store.index.read { txn in
            try txn.scan("chunks") { _, v in
                let location = try ChunkRecord(decoding: v).location
                var c = byPack[location.packID] ?? Candidate(pack: location.packID, liveBytes: 0, unsettledBytes: 0)
                c.liveBytes += location.recordSize
                if !location.flags.contains(.settled) { c.unsettledBytes += location.recordSize }
                byPack[location.packID] = c
                return true
            }
        }
        let half = store.config.packSizeLimit / 2
        return byPack.values
            .filter { $0.unsettledBytes > 0 && Double($0.unsettledBytes) >= threshold * Double($0.liveBytes) }
            .sorted { ($0.liveBytes < half ? 1 : 0, $0.unsettledBytes, $0.pack) > ($1.liveBytes < half ? 1 : 0, $1.unsettledBytes, $1.pack) }
    }

    /// Settles `candidates` (by default all of them), one pack at a time, while
    /// `shouldContinue` says so (checked before each pack: a server stops when clients get
    /// busy). `progress` is called after each pack with the report so far.
    ///
    /// `shouldStop` is checked chunk by chunk: when it turns true the pack under way is
    /// abandoned (nothing of it written) and `SettlingStopped` is thrown.
    public func settle(_ candidates: [Candidate]? = nil, shouldContinue: () -> Bool = { true },
                       shouldStop: @escaping @Sendable () -> Bool = { false },
                       progress: (Report) -> Void = { _ in }) throws -> Report {
        let recompressor = ChunkRecompressor(level: level, frameSize: frameSize, parallel: parallel, shouldStop: shouldStop)
        let candidates = try candidates ?? self.candidates()
        var report = Report()
        for candidate in candidates {
            guard shouldContinue() else { break }
            let result: Store.CompactionResult??
            do {
                result = try store.withMaintenanceLock(wait: true) { () throws -> Store.CompactionResult? in
                    // The pack the last copies went to may be this candidate (a half-empty pack
                    // is adopted for appending): seal it, so it can be claimed like the others.
                    try store.packs.seal()
                    guard let claim = try store.packs.claim(pack: candidate.pack) else { return nil }
                    return try store.compact(claim, settling: recompressor)
                }
            } catch let damage as BlobStoreError where damage.code == .corrupt {
                // Damage is fsck's to report and repair; the other packs settle.
                store.logger.warning("pack not settled: \(damage.message)")
                result = nil
            }
            if let result = result ?? nil {
                report.packsSettled += 1
                report.chunksMoved += result.chunksMoved
                report.bytesBefore += result.bytesBeforeMove
                report.bytesAfter += result.bytesMoved
            } else {
                report.packsSkipped += 1
            }
            progress(report)
        }
        // The last copies' pack is complete: let go of it, so a collector may claim it.
        if report.packsSettled > 0 { try store.packs.seal() }
        return report
    }
}
