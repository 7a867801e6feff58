import Foundation

/// Recently read stretches of packs in object storage, kept in memory: a pull reads a
/// layer's chunks one after another, so fetching 4 MiB blocks turns a few hundred small
/// ranged GETs into a few large ones, and the next pull of a hot layer needs none. Packs
/// never change once written, so a cached block is never stale; a removed pack's blocks
/// are dropped, and least recently used blocks go first when the cache is full.
final class PackBlockCache: @unchecked Sendable {
    static let blockSize = 4 << 20
    /// Blocks fetched ahead of a reader: a pull or a compaction reads a pack from start to
    /// end, so while it copies one block the next ones are already on their way.
    static let readAhead = 2
    private struct Key: Hashable { let pack: UInt64; let block: Int }
    private let capacity: Int
    private let condition = NSCondition()
    private var blocks: [Key: (bytes: [UInt8], used: UInt64)] = [:]
    /// Blocks some thread is fetching now: others wait for them instead of fetching twice.
    private var inFlight: Set<Key> = []
    private var bytes = 0
    private var tick: UInt64 = 0

    init(capacityBytes: Int) { capacity = max(capacityBytes, 2 * PackBlockCache.blockSize) }

    /// Reads `buffer.count` bytes of pack `id` from `offset`, fetching missing blocks with
    /// `fetch(range)`; returns fewer at the pack's end, as `pread` does.
    func read(pack id: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer,
              fetch: @escaping @Sendable (Range<Int>) throws -> [UInt8]) throws -> Int {
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
        condition.lock()
        defer { condition.unlock() }
        for key in blocks.keys where key.pack == id {
            bytes -= blocks[key]!.bytes.count
            blocks[key] = nil
        }
    }

    private static func range(_ key: Key) -> Range<Int> {
        let start = key.block * PackBlockCache.blockSize
        return start..<(start + PackBlockCache.blockSize)
    }

    private func block(_ key: Key, fetch: @escaping @Sendable (Range<Int>) throws -> [UInt8]) throws -> [UInt8] {
        condition.lock()
        while true {
            tick += 1
            if let hit = blocks[key] {
                blocks[key] = (hit.bytes, tick)
                if hit.bytes.count == PackBlockCache.blockSize { readAhead(after: key, fetch: fetch) }
                condition.unlock()
                return hit.bytes
            }
            guard inFlight.contains(key) else { break }
            condition.wait()
        }
        inFlight.insert(key)
        readAhead(after: key, fetch: fetch)
        condition.unlock()
        // Fetched outside the lock: other readers go on meanwhile.
        let fetched: [UInt8]
        do { fetched = try fetch(PackBlockCache.range(key)) } catch {
            condition.lock()
            inFlight.remove(key)
            condition.broadcast()
            condition.unlock()
            throw error
        }
        condition.lock()
        inFlight.remove(key)
        store(key, fetched)
        condition.broadcast()
        condition.unlock()
        return fetched
    }

    /// Starts fetching the blocks after `key` that nobody has or is fetching. Lock held.
    private func readAhead(after key: Key, fetch: @escaping @Sendable (Range<Int>) throws -> [UInt8]) {
        for next in (key.block + 1)...(key.block + PackBlockCache.readAhead) {
            let ahead = Key(pack: key.pack, block: next)
            guard blocks[ahead] == nil, !inFlight.contains(ahead) else { continue }
            inFlight.insert(ahead)
            DispatchQueue.global().async { [self] in
                // Past the pack's end the fetch fails (416): nothing is kept, nobody waits.
                let fetched = try? fetch(PackBlockCache.range(ahead))
                condition.lock()
                inFlight.remove(ahead)
                if let fetched, !fetched.isEmpty { store(ahead, fetched) }
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// Keeps a block, evicting the least recently used past the capacity. Lock held.
    private func store(_ key: Key, _ fetched: [UInt8]) {
        tick += 1
        if let old = blocks[key] { bytes -= old.bytes.count }
        blocks[key] = (fetched, tick)
        bytes += fetched.count
        while bytes > capacity, let oldest = blocks.min(by: { $0.value.used < $1.value.used })?.key {
            bytes -= blocks[oldest]!.bytes.count
            blocks[oldest] = nil
        }
    }
}
