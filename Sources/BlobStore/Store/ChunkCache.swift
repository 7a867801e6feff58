import Foundation

/// Decompressed chunks recently read, shared by every reader of a store: when several
/// clients pull the same image at once, each chunk is read from its pack and decompressed
/// once, then served from memory. Off (capacity 0) unless a long-running reader — the
/// registry — turns it on.
///
/// Two generations approximate LRU at the cost of two dictionary lookups: entries go into
/// the young map; when it holds half the capacity it becomes the old map and the previous
/// old map is dropped; a hit in the old map moves the entry back to the young one.
public final class ChunkCache: @unchecked Sendable {
    private let lock = NSLock()
    private var young: [Digest: [UInt8]] = [:]
    private var old: [Digest: [UInt8]] = [:]
    private var youngBytes = 0
    private var capacity = 0

    /// Sets the bytes the cache may hold (0 turns it off and empties it).
    public func setCapacity(_ bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        capacity = bytes
        if bytes == 0 { young = [:]; old = [:]; youngBytes = 0 }
    }

    var isEnabled: Bool {
        lock.lock(); defer { lock.unlock() }
        return capacity > 0
    }

    /// Copies a cached chunk into `target`; false on a miss.
    func copy(_ key: Digest, into target: UnsafeMutableRawBufferPointer) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard capacity > 0 else { return false }
        if let bytes = young[key] ?? promote(key), bytes.count == target.count {
            bytes.withUnsafeBytes { target.copyMemory(from: $0) }
            return true
        }
        return false
    }

    private func promote(_ key: Digest) -> [UInt8]? {
        guard let bytes = old.removeValue(forKey: key) else { return nil }
        insert(key, bytes)
        return bytes
    }

    func put(_ key: Digest, _ bytes: UnsafeRawBufferPointer) {
        lock.lock()
        defer { lock.unlock() }
        guard capacity > 0, bytes.count <= capacity / 4, young[key] == nil else { return }
        insert(key, Array(bytes))
    }

    private func insert(_ key: Digest, _ bytes: [UInt8]) {
        young[key] = bytes
        youngBytes += bytes.count
        if youngBytes > capacity / 2 {
            old = young
            young = [:]
            youngBytes = 0
        }
    }
}
