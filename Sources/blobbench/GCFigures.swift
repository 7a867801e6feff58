import BlobStore
import GC

/// One `container rm` + `gc`, timed in two parts.
struct RemovalRun: Codable {
    var removeMs: Double
    var collectMs: Double
    var totalMs: Double
    var blobsFreed: Int
    var chunksFreed: Int
    var bytesFreed: UInt64
    var packsRemoved: Int
    var packsCompacted: Int

    init(removeMs: Double, collectMs: Double, report: GCReport) {
        self.removeMs = removeMs
        self.collectMs = collectMs
        totalMs = removeMs + collectMs
        blobsFreed = report.blobsFreed
        chunksFreed = report.chunksFreed
        bytesFreed = report.bytesFreed
        packsRemoved = report.packsRemoved
        packsCompacted = report.packsCompacted
    }
}

/// Removing one container from a store of `blobs` fill blobs, repeated; medians kept as
/// fields so the JSON carries them.
struct RemovalFigures: Codable {
    var blobs: Int
    var fill: StoreFiller.Result
    /// The store as measured: blob records, pack files, bytes in packs.
    var storeBlobs: UInt64
    var packs: Int
    var packBytes: UInt64
    var runs: [RemovalRun]
    var medianRemoveMs: Double
    var medianCollectMs: Double
    var medianTotalMs: Double

    init(blobs: Int, fill: StoreFiller.Result, storeBlobs: UInt64, packs: Int, packBytes: UInt64, runs: [RemovalRun]) {
        self.blobs = blobs
        self.fill = fill
        self.storeBlobs = storeBlobs
        self.packs = packs
        self.packBytes = packBytes
        self.runs = runs
        medianRemoveMs = runs.map(\.removeMs).median
        medianCollectMs = runs.map(\.collectMs).median
        medianTotalMs = runs.map(\.totalMs).median
    }
}

/// Removing many containers, then one collection.
struct ManyRemovalFigures: Codable {
    var containers: Int
    var setupMs: Double
    var removeAllMs: Double
    var collectMs: Double
    var blobsFreed: Int
    var chunksFreed: Int
    var bytesFreed: UInt64
    var packsRemoved: Int
    /// Packs compacted by that collection: none while this process still appends to the
    /// pack holding the diffs (a pack being written is never compacted).
    var packsCompacted: Int
    /// Blob records left afterwards: the image's four, if the collection was exact.
    var blobsLeft: UInt64
}

/// Everything one `blobbench gc` run measured.
struct GCBenchReport: Codable {
    var cores: Int
    var workers: Int
    var repeats: Int
    var removal: [RemovalFigures]
    var many: ManyRemovalFigures?
    var totalSeconds: Double
}
