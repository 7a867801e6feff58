import BlobStore
import Dispatch
import Foundation

/// An open file: where its bytes come from, and a chunk-aligned read-ahead window.
///
/// FUSE reads arrive in pieces of at most 128 KiB. A read outside the window fetches just
/// the chunks that cover it (one or two: fast first bytes and random reads). Once reads
/// look sequential the window grows, doubling up to 8 MiB, and is fetched in one go (its
/// chunks decompressed in parallel); when half of it has been read, the next window is
/// fetched in the background, so sequential reads rarely wait.
final class OpenFile: @unchecked Sendable {
    enum Source {
        case blob(Digest, offset: UInt64, size: UInt64)
        case bytes([UInt8])
    }

    let source: Source
    private let lock = NSLock()
    private var recipe: BlobRecord?
    private var window = Window()
    /// The background fetch's result, under its own lock (the reader may wait for the
    /// fetch while holding `lock`).
    private var prefetchedSlot: Window?
    private let prefetchLock = NSLock()
    private var prefetched: Window? {
        get { prefetchLock.lock(); defer { prefetchLock.unlock() }; return prefetchedSlot }
        set { prefetchLock.lock(); prefetchedSlot = newValue; prefetchLock.unlock() }
    }
    private var prefetching: DispatchWorkItem?
    private var nextExpected: UInt64 = 0
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
            if !window.covers(wanted) {
                if let p = prefetched, p.covers(wanted) {
                    window = p
                } else {
                    prefetching?.wait()
                    if let p = prefetched, p.covers(wanted) {
                        window = p
                    } else {
                        // Sequential reads widen the window; a jump shrinks it to what is asked.
                        windowChunks = offset == nextExpected && offset > 0 ? min(windowChunks * 2, 64) : 1
                        window = try fetch(store, blob, digest, from: wanted.lowerBound, covering: wanted.upperBound, chunks: windowChunks)
                    }
                }
                prefetched = nil
            }
            let n = Int(wanted.count)
            window.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + Int(wanted.lowerBound - window.start), byteCount: n) }
            nextExpected = offset + UInt64(n)
            // Past the middle of a window of a sequential reader: fetch the next one now.
            let windowEnd = window.start + UInt64(window.bytes.count)
            if windowChunks > 1, prefetched == nil, wanted.upperBound > window.start + UInt64(window.bytes.count / 2),
               windowEnd < base + size {
                let chunks = windowChunks
                let item = DispatchWorkItem { [weak self] in
                    guard let self, let next = try? self.fetch(store, blob, digest, from: windowEnd, covering: windowEnd + 1, chunks: chunks) else { return }
                    self.prefetched = next
                }
                prefetching = item
                DispatchQueue.global().async(execute: item)
            }
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
        var bytes = [UInt8](repeating: 0, count: Int(blob.chunkEnds[last] - start))
        try bytes.withUnsafeMutableBytes { try store.readChunks(of: blob, digest: digest, indices: first..<last + 1, into: $0, verify: false) }
        return Window(start: start, bytes: bytes)
    }
}
