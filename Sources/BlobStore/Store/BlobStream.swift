/// A blob (or a byte range of it) read batch by batch: the recipe is loaded once, and each
/// `next` reads the next run of whole chunks (about 8 MiB) in parallel and hands over the
/// part of it inside the range. Callers that interleave reads with other work — an HTTP
/// response written between batches — pull batches at their own pace, without
/// re-reading the recipe or decompressing a chunk twice at a window's edge.
public final class BlobStream: @unchecked Sendable {
    public let digest: Digest
    public let range: Range<UInt64>
    private let store: Store
    private let blob: BlobRecord
    private let verify: Bool
    private var nextChunk: Int
    private let lastChunk: Int
    private var buffer: UnsafeMutableRawBufferPointer?
    private let batchBytes: Int

    /// `batchBytes` bounds each batch: larger batches decompress more chunks in parallel,
    /// smaller ones keep many concurrent readers (a registry's) within less memory.
    public init(store: Store, digest: Digest, range: Range<UInt64>? = nil, verify: Bool = false, batchBytes: Int = 8 << 20) throws {
        self.store = store
        self.batchBytes = batchBytes
        self.digest = digest
        self.verify = verify
        blob = try store.blobRecord(digest)
        let wanted = range ?? 0..<blob.size
        guard wanted.upperBound <= blob.size else {
            throw BlobStoreError(.invalidArgument, "range \(wanted.lowerBound)-\(wanted.upperBound) is outside blob \(digest) of \(blob.size) bytes")
        }
        self.range = wanted
        if wanted.isEmpty {
            nextChunk = 1
            lastChunk = 0
        } else {
            nextChunk = blob.chunkIndex(containing: wanted.lowerBound)
            lastChunk = blob.chunkIndex(containing: wanted.upperBound - 1)
        }
    }

    deinit { buffer?.deallocate() }

    /// Reads the next batch and passes its bytes (within the range) to `sink`; false once
    /// everything was read.
    public func next(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        guard let size = nextBatchSize else { return false }
        if buffer == nil {
            buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: batchBytes + store.config.chunking.maxSize, alignment: 64)
        }
        let batch = UnsafeMutableRawBufferPointer(rebasing: buffer![..<size])
        let wanted = try readNextBatch(into: batch)
        try sink(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(batch)[wanted]))
        return true
    }

    /// Bytes the next batch takes (whole chunks, so a little more than the range may need);
    /// nil once everything was read.
    public var nextBatchSize: Int? {
        nextBatch().map { Int($0.bytes) }
    }

    /// Reads the next batch straight into `target` (at least `nextBatchSize` bytes: a
    /// response buffer, so no copy follows) and returns where in it the range's bytes are.
    public func readNextBatch(into target: UnsafeMutableRawBufferPointer) throws -> Range<Int> {
        guard let (first, end, bytes) = nextBatch() else { return 0..<0 }
        precondition(target.count >= Int(bytes), "batch target too small")
        let batch = UnsafeMutableRawBufferPointer(rebasing: target[..<Int(bytes)])
        try store.readChunks(of: blob, digest: digest, indices: first..<end, into: batch, verify: verify)
        let batchStart = blob.chunkStart(first)
        let from = Int(max(range.lowerBound, batchStart) - batchStart)
        let to = Int(min(range.upperBound, blob.chunkEnds[end - 1]) - batchStart)
        nextChunk = end
        return from..<to
    }

    /// The chunks of the next batch: whole chunks up to `batchBytes` (at least one).
    private func nextBatch() -> (first: Int, end: Int, bytes: UInt64)? {
        guard nextChunk <= lastChunk else { return nil }
        let first = nextChunk
        var end = first
        var bytes: UInt64 = 0
        while end <= lastChunk && (end == first || bytes < UInt64(batchBytes)) {
            bytes += blob.chunkEnds[end] - blob.chunkStart(end)
            end += 1
        }
        return (first, end, bytes)
    }
}

/// A reusable scratch buffer for pack records, grown on demand (see `Store.scratchBuffers`):
/// reading a chunk allocates nothing in the steady state.
final class ScratchBuffer {
    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)

    func buffer(atLeast size: Int) throws -> UnsafeMutableRawBufferPointer {
        if storage.count < size {
            storage.deallocate()
            storage = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        }
        return storage
    }

    deinit { storage.deallocate() }
}
