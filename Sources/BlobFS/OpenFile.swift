import BlobStore
import Foundation

/// An open file: where its bytes come from, and a read-ahead window.
///
/// FUSE reads arrive in pieces of at most 128 KiB. Served one by one, each would touch one
/// chunk at a time; instead, once reads look sequential, the next window (growing to 8 MiB)
/// is fetched in one ranged store read, whose chunks are fetched and decompressed in
/// parallel, and later reads are served from it.
final class OpenFile: @unchecked Sendable {
    enum Source {
        case blob(Digest, offset: UInt64, size: UInt64)
        case bytes([UInt8])
    }

    let source: Source
    private let lock = NSLock()
    private var window: [UInt8] = []
    private var windowStart: UInt64 = 0
    private var nextExpected: UInt64 = 0
    private var windowSize: UInt64 = 256 << 10
    static let maxWindow: UInt64 = 8 << 20

    init(_ source: Source) { self.source = source }

    /// Copies up to `count` bytes at `offset` into `buffer`; returns the bytes copied.
    func read(_ store: Store, into buffer: UnsafeMutableRawPointer, count: Int, offset: UInt64) throws -> Int {
        switch source {
        case .bytes(let bytes):
            guard offset < UInt64(bytes.count) else { return 0 }
            let n = min(count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
            return n
        case .blob(let digest, let base, let size):
            guard offset < size else { return 0 }
            let end = min(size, offset + UInt64(count))
            lock.lock()
            defer { lock.unlock() }
            if offset >= windowStart && end <= windowStart + UInt64(window.count) {
                return copyOut(buffer, offset, end)
            }
            // Sequential access grows the window; a jump starts small again.
            windowSize = offset == nextExpected ? min(windowSize * 2, OpenFile.maxWindow) : 256 << 10
            let fetchEnd = min(size, max(end, offset + windowSize))
            var fetched: [UInt8] = []
            fetched.reserveCapacity(Int(fetchEnd - offset))
            try store.read(digest, range: base + offset..<base + fetchEnd) { fetched.append(contentsOf: $0) }
            window = fetched
            windowStart = offset
            return copyOut(buffer, offset, end)
        }
    }

    private func copyOut(_ buffer: UnsafeMutableRawPointer, _ offset: UInt64, _ end: UInt64) -> Int {
        let n = Int(end - offset)
        window.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + Int(offset - windowStart), byteCount: n) }
        nextExpected = end
        return n
    }
}
