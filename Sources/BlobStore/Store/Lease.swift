import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A lease keeps in-flight work safe from garbage collection: an ingest holds one from
/// before its first index lookup until its commit.
///
/// The rule GC follows (see `Store.oldestLiveLeaseGeneration`): an object that reached a
/// count of zero at generation `g` may only be deleted when every live lease was taken at a
/// generation above `g`. An ingest dedups only against chunks with a count above zero, so
/// any chunk it relies on either still has a count at its commit, or reached zero after
/// its lease was taken — and then GC leaves it alone until the lease ends.
public struct Lease: Sendable, Equatable {
    public var id: UInt64
    /// The store generation when the lease was taken.
    public var generation: UInt64
    /// Seconds since 1970 when it was taken, and after which it is void.
    public var createdAt: UInt64
    public var expiresAt: UInt64
    /// The holding process, or 0 for a lease that outlives processes (a resumable upload).
    public var pid: UInt32
    public var purpose: String

    /// Alive while unexpired and, for a process lease, while that process runs.
    public func isAlive(now: UInt64 = UInt64(time(nil))) -> Bool {
        if now >= expiresAt { return false }
        if pid == 0 { return true }
        return kill(pid_t(pid), 0) == 0 || errno == EPERM
    }

    func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.u64(generation)
        w.u64(createdAt)
        w.u64(expiresAt)
        w.u32(pid)
        w.string(purpose)
        return w.bytes
    }

    init(id: UInt64, generation: UInt64, createdAt: UInt64, expiresAt: UInt64, pid: UInt32, purpose: String) {
        self.id = id
        self.generation = generation
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.pid = pid
        self.purpose = purpose
    }

    init(id: UInt64, decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "lease")
        self.id = id
        generation = try r.u64()
        createdAt = try r.u64()
        expiresAt = try r.u64()
        pid = try r.u32()
        purpose = try r.string()
    }
}

extension Store {
    /// The store generation: advanced by each new lease, stamped on each garbage entry.
    package static func generation(_ txn: borrowing LMDBTransaction) throws -> UInt64 {
        guard let raw = try txn.get("meta", Array("generation".utf8)), raw.count == 8 else { return 1 }
        return raw.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    /// Takes a lease inside `txn`.
    package static func takeLease(_ txn: borrowing LMDBTransaction, duration: UInt64, processBound: Bool, purpose: String) throws -> Lease {
        let gen = try generation(txn)
        try txn.put("meta", Array("generation".utf8), withUnsafeBytes(of: (gen + 1).littleEndian) { Array($0) })
        var id: UInt64
        repeat { id = UInt64.random(in: 1...UInt64.max) } while try txn.get("leases", id.bigEndianKey) != nil
        let now = UInt64(time(nil))
        let lease = Lease(id: id, generation: gen, createdAt: now, expiresAt: now + duration,
                          pid: processBound ? UInt32(getpid()) : 0, purpose: purpose)
        try txn.put("leases", id.bigEndianKey, lease.encoded())
        return lease
    }

    package static func releaseLease(_ txn: borrowing LMDBTransaction, _ id: UInt64) throws {
        try txn.delete("leases", id.bigEndianKey)
    }

    /// Takes a lease in a transaction of its own.
    public func takeLease(duration: UInt64, processBound: Bool = true, purpose: String) throws -> Lease {
        try index.write { txn in
            try Store.takeLease(txn, duration: duration, processBound: processBound, purpose: purpose)
        }
    }

    public func releaseLease(_ id: UInt64) throws {
        try index.write { txn in try Store.releaseLease(txn, id) }
    }

    /// When the oldest live lease was taken (seconds since 1970), or nil when none is live.
    /// A pack last written before then holds no chunk of an unfinished ingest.
    public func oldestLiveLease() throws -> UInt64? {
        let now = UInt64(time(nil))
        return try leases().filter { $0.isAlive(now: now) }.map(\.createdAt).min()
    }

    /// Every lease, alive or not.
    public func leases() throws -> [Lease] {
        try index.read { txn in try Store.leases(txn) }
    }

    package static func leases(_ txn: borrowing LMDBTransaction) throws -> [Lease] {
        var result: [Lease] = []
        try txn.scan("leases") { k, v in
            result.append(try Lease(id: UInt64(bigEndianKey: k), decoding: v))
            return true
        }
        return result
    }

    /// Garbage stamped below this generation may be collected: the lowest generation among
    /// live leases, or every generation when there are none.
    package static func collectableBelow(_ txn: borrowing LMDBTransaction) throws -> UInt64 {
        let now = UInt64(time(nil))
        var floor = UInt64.max
        for lease in try leases(txn) where lease.isAlive(now: now) {
            floor = min(floor, lease.generation)
        }
        return floor
    }
}
