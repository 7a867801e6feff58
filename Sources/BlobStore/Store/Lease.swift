import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A lease keeps in-flight work safe from garbage collection: an ingest holds one from
/// before its first index lookup until its commit.
///
/// The rule GC follows (see `Store.collectableBelow`): an object that reached a count of
/// zero at generation `g` may only be deleted when every live lease was taken at a
/// generation above `g`. An ingest dedups only against chunks with a count above zero, so
/// any chunk it relies on either still has a count at its commit, or reached zero after
/// its lease was taken — and then GC leaves it alone until the lease ends.
///
/// A lease ends when its record goes: at its holder's commit or abort, or when GC finds it
/// dead and deletes it in the transaction that then collects what it protected. A commit
/// checks in its own transaction that its record is still there, so it can never index
/// data that GC was allowed to remove.
///
/// Liveness: a process-bound lease lives while its holder's `LivenessLock` is held (the
/// kernel's word, not a pid); a resumable upload's lease (no holder) lives until it expires,
/// and each checkpoint extends it.
public struct Lease: Sendable, Equatable {
    public var id: UInt64
    /// The store generation when the lease was taken.
    public var generation: UInt64
    /// Seconds since 1970 when it was taken, and after which it is void.
    public var createdAt: UInt64
    public var expiresAt: UInt64
    /// The process that took it, for people reading `leases()`; liveness uses `holder`.
    public var pid: UInt32
    public var purpose: String
    /// The token of the holder's `LivenessLock`, or 0 for a lease that outlives processes.
    public var holder: UInt64
    /// Packs holding records of the leaseholder's that the index does not point at yet (a
    /// checkpointed upload's): no pack listed by a live lease is removed or compacted.
    public var packs: [UInt64]

    /// Alive while unexpired and, for a process-bound lease, while its holder runs.
    package func isAlive(_ coordination: any StoreCoordination, now: UInt64 = UInt64(time(nil))) -> Bool {
        if now >= expiresAt { return false }
        if holder != 0 { return coordination.isAlive(token: holder) }
        if pid == 0 { return true }
        // A record written by an older blobctl, which knew only pids.
        return kill(pid_t(pid), 0) == 0 || errno == EPERM
    }

    func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.u64(generation)
        w.u64(createdAt)
        w.u64(expiresAt)
        w.u32(pid)
        w.string(purpose)
        w.u64(holder)
        w.u32(UInt32(packs.count))
        for p in packs { w.u64(p) }
        return w.bytes
    }

    init(id: UInt64, generation: UInt64, createdAt: UInt64, expiresAt: UInt64, pid: UInt32, purpose: String, holder: UInt64, packs: [UInt64] = []) {
        self.id = id
        self.generation = generation
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.pid = pid
        self.purpose = purpose
        self.holder = holder
        self.packs = packs
    }

    init(id: UInt64, decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "lease")
        self.id = id
        generation = try r.u64()
        createdAt = try r.u64()
        expiresAt = try r.u64()
        pid = try r.u32()
        purpose = try r.string()
        holder = 0
        packs = []
        if r.remaining > 0 { // older records end here
            holder = try r.u64()
            for _ in 0..<Int(try r.u32()) { packs.append(try r.u64()) }
        }
    }
}

extension Store {
    /// The store generation: advanced by each new lease, stamped on each garbage entry.
    package static func generation(_ txn: borrowing IndexTransaction) throws -> UInt64 {
        guard let raw = try txn.get("meta", Array("generation".utf8)), raw.count == 8 else { return 1 }
        return raw.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    /// Takes a lease inside `txn`.
    package func takeLease(_ txn: borrowing IndexTransaction, duration: UInt64, processBound: Bool, purpose: String) throws -> Lease {
        let gen = try Store.generation(txn)
        try txn.put("meta", Array("generation".utf8), withUnsafeBytes(of: (gen + 1).littleEndian) { Array($0) })
        var id: UInt64
        repeat { id = UInt64.random(in: 1...UInt64.max) } while try txn.get("leases", id.bigEndianKey) != nil
        let now = UInt64(time(nil))
        let lease = Lease(id: id, generation: gen, createdAt: now, expiresAt: now + duration,
                          pid: processBound ? UInt32(getpid()) : 0, purpose: purpose,
                          holder: processBound ? try coordination.myToken() : 0)
        try txn.put("leases", id.bigEndianKey, lease.encoded())
        return lease
    }

    package static func releaseLease(_ txn: borrowing IndexTransaction, _ id: UInt64) throws {
        try txn.delete("leases", id.bigEndianKey)
    }

    /// Takes a lease in a transaction of its own.
    public func takeLease(duration: UInt64, processBound: Bool = true, purpose: String) throws -> Lease {
        try index.write { txn in
            try takeLease(txn, duration: duration, processBound: processBound, purpose: purpose)
        }
    }

    public func releaseLease(_ id: UInt64) throws {
        try index.write { txn in try Store.releaseLease(txn, id) }
    }

    /// Every lease, alive or not.
    public func leases() throws -> [Lease] {
        try index.read { txn in try Store.leases(txn) }
    }

    /// Whether `lease` is alive (see `Lease.isAlive`).
    public func isAlive(_ lease: Lease) -> Bool { lease.isAlive(coordination) }

    package static func leases(_ txn: borrowing IndexTransaction) throws -> [Lease] {
        var result: [Lease] = []
        try txn.scan("leases") { k, v in
            result.append(try Lease(id: UInt64(bigEndianKey: k), decoding: v))
            return true
        }
        return result
    }

    /// Deletes the records of leases that are no longer alive, and resumable ingests whose
    /// lease is gone, inside `txn`; returns the live leases. Called by GC before it decides
    /// anything, so what it collects is decided against exactly the leases that remain —
    /// and a holder that was judged dead finds its record gone at commit.
    package func endDeadLeases(_ txn: borrowing IndexTransaction) throws -> [Lease] {
        let now = UInt64(time(nil))
        var live: [Lease] = []
        var liveIDs = Set<UInt64>()
        for lease in try Store.leases(txn) {
            if lease.isAlive(coordination, now: now) {
                live.append(lease)
                liveIDs.insert(lease.id)
            } else {
                try Store.releaseLease(txn, lease.id)
            }
        }
        var abandoned: [[UInt8]] = []
        try txn.scan("ingests") { k, v in
            if v.count >= 9 {
                let leaseID = UInt64(littleEndian: v.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
                if !liveIDs.contains(leaseID) { abandoned.append(Array(k)) }
            }
            return true
        }
        for k in abandoned { try txn.delete("ingests", k) }
        return live
    }

    /// Garbage stamped below this generation may be collected: the lowest generation among
    /// `live` leases, or every generation when there are none.
    package static func collectableBelow(_ live: [Lease]) -> UInt64 {
        live.map(\.generation).min() ?? UInt64.max
    }
}
