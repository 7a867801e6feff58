import BlobStore

/// Fills a store with `count` distinct small pinned blobs, in parallel. Pinned, as `put`
/// leaves them: they are the store's standing population, never garbage, so a later
/// collection has to find its few garbage blobs among them.
enum StoreFiller {
    struct Result: Codable {
        var count: Int
        var milliseconds: Double
        var bytes: UInt64
        var blobsPerSecond: Double
    }

    static func fill(_ store: Store, count: Int, seed: UInt64, workers: Int) throws -> Result {
        let (_, ms) = try Stopwatch.time {
            try Parallel.run(count: count, workers: workers, scratch: { _ in [UInt8]() }) { i, buffer in
                FillBlob.make(i, seed: seed, into: &buffer)
                _ = try store.put(buffer)
            }
        }
        return Result(count: count, milliseconds: ms, bytes: try store.totals().logicalBytes,
                      blobsPerSecond: ms > 0 ? Double(count) / (ms / 1000) : 0)
    }
}
