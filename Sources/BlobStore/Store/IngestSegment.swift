import Dispatch
import Foundation

/// One cut segment of an ingest on its way to the pack: its chunks are hashed, looked up
/// and compressed by jobs on all cores (each job a run of consecutive chunks, start to
/// finish, with no barrier between the steps), then the session appends the new ones in
/// blob order. The next segment's jobs start while this one's last jobs still run, so
/// neither core waits at segment boundaries.
///
/// The segment's bytes and its compression arena belong to the session, which reuses them
/// only after this segment has been appended.
final class IngestSegment: @unchecked Sendable {
    let base: UnsafeRawPointer
    /// Chunk end offsets within the segment.
    let ends: [Int]
    /// Each chunk's key, written by the job that owns the chunk.
    let keys: UnsafeMutableBufferPointer<Digest>
    /// The record of each chunk this segment writes; nil for one the index already has or
    /// that an earlier chunk of the session claimed.
    let records: UnsafeMutableBufferPointer<PendingRecord?>
    /// Leaves when every job has run.
    let jobs = DispatchGroup()
    private let arena: UnsafeMutableRawPointer
    private let slotOffsets: [Int]

    /// The threads that run the jobs, one per core, shared by every ingest of the process.
    /// Not Dispatch's pool: an ingest may run inside `concurrentPerform` or on a global
    /// queue worker, and would then block the very threads its jobs wait for.
    static let workers = BlockingPool(threads: max(1, ProcessInfo.processInfo.activeProcessorCount))

    /// A job covers consecutive chunks up to about this many bytes: enough work to make a
    /// read transaction and a dispatch worth it, small enough to spread over the cores.
    static let jobBytes = 1 << 20

    /// `arenaOfSize` hands out the room for every chunk's compressed bytes, each in its own
    /// slot, given how many bytes that takes.
    init(base: UnsafeRawPointer, ends: [Int], arenaOfSize: (Int) -> UnsafeMutableRawPointer) {
        self.base = base
        self.ends = ends
        keys = .allocate(capacity: ends.count)
        keys.initialize(repeating: Digest(w0: 0, w1: 0, w2: 0, w3: 0))
        records = .allocate(capacity: ends.count)
        records.initialize(repeating: nil)
        var offsets: [Int] = []
        offsets.reserveCapacity(ends.count)
        var offset = 0
        for i in 0..<ends.count {
            offsets.append(offset)
            offset += ZstdCompressor.bound(Self.range(i, ends).length)
        }
        slotOffsets = offsets
        arena = arenaOfSize(offset)
    }

    deinit {
        keys.deallocate()
        records.deallocate()
    }

    private static func range(_ i: Int, _ ends: [Int]) -> (start: Int, length: Int) {
        let s = i == 0 ? 0 : ends[i - 1]
        return (s, ends[i] - s)
    }

    /// The chunks split into jobs of about `jobBytes`.
    var jobRanges: [Range<Int>] {
        var result: [Range<Int>] = []
        var first = 0
        while first < ends.count {
            let start = Self.range(first, ends).start
            var end = first + 1
            while end < ends.count && ends[end - 1] - start < Self.jobBytes { end += 1 }
            result.append(first..<end)
            first = end
        }
        return result
    }

    /// One job: hashes its chunks, claims the keys no earlier chunk of the session took,
    /// asks the index (one read transaction) which of those it lacks, and compresses them.
    /// A chunk whose count is zero is treated as new: GC may remove it at any moment (see
    /// `Lease`); one with a count stays until the commit, under the session's lease.
    func process(_ job: Range<Int>, store: Store, claims: ChunkClaims) throws {
        var claimed: [Int] = []
        for i in job {
            let r = Self.range(i, ends)
            let key = SHA256Hasher.hash(UnsafeRawBufferPointer(start: base + r.start, count: r.length))
            keys[i] = key
            if claims.claim(key) { claimed.append(i) }
        }
        if claimed.isEmpty { return }
        var fresh: [Int] = []
        try store.index.read { txn in
            for i in claimed {
                let known = try keys[i].key.withUnsafeBytes { (k) throws -> Bool in
                    guard let raw = try txn.get("chunks", k) else { return false }
                    return try ChunkRecord(decoding: raw).references > 0
                }
                if !known { fresh.append(i) }
            }
        }
        let level = store.config.compressionLevel
        for i in fresh {
            let r = Self.range(i, ends)
            let raw = UnsafeRawBufferPointer(start: base + r.start, count: r.length)
            var payload = raw
            var flags: ChunkFlags = []
            if level != 0 && r.length > 0 {
                let slot = UnsafeMutableRawBufferPointer(start: arena + slotOffsets[i], count: ZstdCompressor.bound(r.length))
                if let n = store.compressors.withElement({ $0.compress(raw, into: slot) }), ZstdCompressor.saves(n, of: r.length) {
                    payload = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(slot)[..<n])
                    flags = .zstd
                }
            }
            records[i] = PendingRecord(key: keys[i], flags: flags, rawSize: UInt32(r.length), payload: payload, checksum: CRC32C.checksum(payload))
        }
    }
}

/// The chunk keys an ingest session has taken on: the first chunk with a key claims it,
/// later ones (in any segment, on any core) only reference it.
final class ChunkClaims: @unchecked Sendable {
    private var keys: Set<Digest>
    private let lock = NSLock()

    init(_ keys: some Sequence<Digest>) { self.keys = Set(keys) }

    /// True for the first claim of `key`.
    func claim(_ key: Digest) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return keys.insert(key).inserted
    }
}
