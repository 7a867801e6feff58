import Foundation

/// Recently read stretches of packs in object storage, kept in memory: a pull reads a
/// layer's chunks one after another, so fetching 4 MiB blocks turns a few hundred small
/// ranged GETs into a few large ones, and the next pull of a hot layer needs none. Packs
/// never change once written, so a cached block is never stale; a removed pack's blocks
/// are dropped, and least recently used blocks go first when the cache is full.
final class PackBlockCache: @unchecked Sendable {
    static let blockSize = 4 << 20
    private struct Key: Hashable { let pack: UInt64; let block: Int }
    private let capacity: Int
    private let lock = NSLock()
    private var blocks: [Key: (bytes: [UInt8], used: UInt64)] = [:]
    private var bytes = 0
    private var tick: UInt64 = 0

    init(capacityBytes: Int) { capacity = max(capacityBytes, 2 * PackBlockCache.blockSize) }

    /// Reads `buffer.count` bytes of pack `id` from `offset`, fetching missing blocks with
    /// `fetch(range)`; returns fewer at the pack's end, as `pread` does.
    func read(pack id: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer,
              fetch: (Range<Int>) throws -> [UInt8]) throws -> Int {
        var done = 0
        while done < buffer.count {
            let position = Int(offset) + done
            let block = position / PackBlockCache.blockSize
            let bytes = try self.block(Key(pack: id, block: block), fetch: fetch)
            let within = position - block * PackBlockCache.blockSize
            guard within < bytes.count else { break }
            let n = min(bytes.count - within, buffer.count - done)
            bytes.withUnsafeBytes { source in
                (buffer.baseAddress! + done).copyMemory(from: source.baseAddress! + within, byteCount: n)
            }
            done += n
            if bytes.count < PackBlockCache.blockSize { break } // the pack's last block
        }
        return done
    }

    func drop(pack id: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        for key in blocks.keys where key.pack == id {
            bytes -= blocks[key]!.bytes.count
            blocks[key] = nil
        }
    }

    private func block(_ key: Key, fetch: (Range<Int>) throws -> [UInt8]) throws -> [UInt8] {
        lock.lock()
        tick += 1
        if let hit = blocks[key] {
            blocks[key] = (hit.bytes, tick)
            lock.unlock()
            return hit.bytes
        }
        lock.unlock()
        // Fetched outside the lock: other readers go on meanwhile (two readers of one
        // missing block may both fetch it; the second copy replaces the first).
        let start = key.block * PackBlockCache.blockSize
        let fetched = try fetch(start..<(start + PackBlockCache.blockSize))
        lock.lock()
        defer { lock.unlock() }
        if let old = blocks[key] { bytes -= old.bytes.count }
        blocks[key] = (fetched, tick)
        bytes += fetched.count
        while bytes > capacity, let oldest = blocks.min(by: { $0.value.used < $1.value.used })?.key {
            bytes -= blocks[oldest]!.bytes.count
            blocks[oldest] = nil
        }
        return fetched
    }
}
