import BlobStore
import Foundation

/// An open file: where its bytes come from, and a chunk-aligned read-ahead window.
///
/// FUSE reads arrive in pieces of at most 128 KiB. A read outside the window fetches just
/// the chunks that cover it (one or two: fast first bytes and random reads). Once reads
/// look sequential the window grows, doubling up to 8 MiB, and is fetched in one go (its
/// chunks decompressed in parallel). (Fetching the next window in the background was
/// tried and measured slower: it competed with the kernel's own parallel read-ahead.)
final class OpenFile: @unchecked Sendable {
    enum Source {
        case blob(Digest, offset: UInt64, size: UInt64)
        case bytes([UInt8])
    }

    let source: Source
    private let lock = NSLock()
    private var recipe: BlobRecord?
    private var window = Window()
    /// The window before the current one: the kernel's read-ahead sends several reads at
    /// once and not always in order, so a late one often lands here.
    private var previous = Window()
    private var windowChunks = 1
    static let maxWindowBytes: UInt64 = 8 << 20

    /// Bytes of the underlying blob, `start..<start+bytes.count`.
    struct Window {
        var start: UInt64 = 0
        var bytes: [UInt8] = []
        func covers(_ r: Range<UInt64>) -> Bool { r.lowerBound >= start && r.upperBound <= start + UInt64(bytes.count) }
    }

    init(_ source: Source) { self.source = source }

    /// Copies up to `count` bytes at `offset` (relative to the file) into `buffer`.
    func read(_ store: Store, into buffer: UnsafeMutableRawPointer, count: Int, offset: UInt64) throws -> Int {
        switch source {
        case .bytes(let bytes):
            guard offset < UInt64(bytes.count) else { return 0 }
            let n = min(count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
            return n
        case .blob(let digest, let base, let size):
            guard offset < size else { return 0 }
            let wanted = base + offset..<base + min(size, offset + UInt64(count))
            lock.lock()
            defer { lock.unlock() }
            if recipe == nil { recipe = try store.blobRecord(digest) }
            let blob = recipe!
            if !window.covers(wanted) && previous.covers(wanted) {
                swap(&window, &previous)
            }
            if !window.covers(wanted) {
                // Reads near the window (within its size either way: the kernel's read-ahead
                // is not strictly in order) widen it; a jump shrinks it to the chunk asked for.
                let windowEnd = window.start + UInt64(window.bytes.count)
                let slack = OpenFile.maxWindowBytes
                let near = !window.bytes.isEmpty && wanted.lowerBound + slack >= window.start && wanted.lowerBound <= windowEnd + slack
                windowChunks = near ? min(windowChunks * 2, 64) : 1
                previous = window
                window = try fetch(store, blob, digest, from: wanted.lowerBound, covering: wanted.upperBound, chunks: windowChunks)
            }
            let n = Int(wanted.count)
            window.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + Int(wanted.lowerBound - window.start), byteCount: n) }
            return n
        }
    }

    /// Reads whole chunks: the one holding `from`, up to `covering`, and at least `chunks`
    /// of them (within 8 MiB).
    private func fetch(_ store: Store, _ blob: BlobRecord, _ digest: Digest, from: UInt64, covering: UInt64, chunks: Int) throws -> Window {
        let first = blob.chunkIndex(containing: from)
        var last = blob.chunkIndex(containing: min(covering, blob.size) - 1)
        while last - first + 1 < chunks && last + 1 < blob.chunkCount
                && blob.chunkEnds[last + 1] - blob.chunkStart(first) <= OpenFile.maxWindowBytes {
            last += 1
        }
        let start = blob.chunkStart(first)
        let count = Int(blob.chunkEnds[last] - start)
        let bytes = try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            try store.readChunks(of: blob, digest: digest, indices: first..<last + 1, into: UnsafeMutableRawBufferPointer(buffer), verify: false)
            initialized = count
        }
        return Window(start: start, bytes: bytes)
    }
}
