/// Reads a blob front to back in windows, for consumers that pull bytes (a tar reader, a
/// decompressor): each window is one ranged read of the store, so its chunks are fetched
/// and decompressed in parallel.
public final class BlobByteSource {
    let store: Store
    let digest: Digest
    let size: UInt64
    private var window: [UInt8] = []
    private var windowStart: UInt64 = 0
    private var position: UInt64 = 0
    static let windowSize: UInt64 = 8 << 20

    public init(store: Store, digest: Digest) throws {
        self.store = store
        self.digest = digest
        size = try store.stat(digest).size
    }

    /// Fills `buffer` with the next bytes; 0 at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if position >= size { return 0 }
        if position >= windowStart + UInt64(window.count) {
            windowStart = position
            let end = min(size, position + BlobByteSource.windowSize)
            var next: [UInt8] = []
            next.reserveCapacity(Int(end - position))
            try store.read(digest, range: position..<end) { next.append(contentsOf: $0) }
            window = next
        }
        let offset = Int(position - windowStart)
        let n = min(buffer.count, window.count - offset)
        window.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        position += UInt64(n)
        return n
    }
}
