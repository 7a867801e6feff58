/// Minimum, average and maximum chunk sizes of a store. Fixed when the store is created and
/// recorded in its config: changing them would change every cut point and so every chunk key,
/// and with them the deduplication against what is already stored.
public struct ChunkingParameters: Codable, Hashable, Sendable {
    public var minSize: Int
    public var averageSize: Int
    public var maxSize: Int

    /// 32 KiB / 128 KiB / 512 KiB: chosen by measuring dedup and ingest speed on the image
    /// corpus (see README, "Choosing the chunk sizes").
    public static let `default` = ChunkingParameters(minSize: 32 << 10, averageSize: 128 << 10, maxSize: 512 << 10)

    public init(minSize: Int, averageSize: Int, maxSize: Int) {
        self.minSize = minSize
        self.averageSize = averageSize
        self.maxSize = maxSize
    }

    /// Checks the sizes make sense: a power-of-two average between min and max, and a max
    /// small enough for a pack record's 32-bit size fields.
    public func validate() throws {
        guard minSize >= 64, averageSize > minSize, maxSize > averageSize else {
            throw BlobStoreError(.invalidArgument, "chunk sizes must satisfy 64 <= min < avg < max (got \(minSize)/\(averageSize)/\(maxSize))")
        }
        guard averageSize & (averageSize - 1) == 0 else {
            throw BlobStoreError(.invalidArgument, "average chunk size must be a power of two (got \(averageSize))")
        }
        guard maxSize <= 16 << 20 else {
            throw BlobStoreError(.invalidArgument, "max chunk size is at most 16 MiB (got \(maxSize))")
        }
    }
}
