import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// References held by a FUSE mount on the images it exposes, so GC does not collect what
/// is being read. A mount record names its process's `LivenessLock`; records of processes
/// that died without unmounting are dropped by the next `gc`, which releases their
/// references.
extension Store {
    static func mountKey(_ id: UInt64) -> [UInt8] { id.bigEndianKey }

    /// Registers a mount of this process; returns its id.
    public func registerMount(_ mountpoint: String) throws -> UInt64 {
        let holder = try coordination.myToken()
        return try index.write { txn in
            var id: UInt64
            repeat { id = UInt64.random(in: 1...UInt64.max) } while try txn.get("mounts", Store.mountKey(id)) != nil
            let m = MountRecord(pid: UInt32(getpid()), mountpoint: mountpoint, held: [], holder: holder)
            try txn.put("mounts", Store.mountKey(id), m.encoded())
            return id
        }
    }

    struct MountRecord {
        var pid: UInt32
        var mountpoint: String
        var held: [Digest]
        /// The mounting process's `LivenessLock` token (0 in records of older blobctls).
        var holder: UInt64

        func encoded() -> [UInt8] {
            var w = BinaryWriter()
            w.u32(pid)
            w.string(mountpoint)
            w.u32(UInt32(held.count))
            for d in held { w.digest(d) }
            w.u64(holder)
            return w.bytes
        }
    }

    private static func decodeMount(_ raw: UnsafeRawBufferPointer) throws -> MountRecord {
        var r = BinaryReader(raw, what: "mount")
        let pid = try r.u32()
        let point = try r.string()
        let count = Int(try r.u32())
        var held: [Digest] = []
        for _ in 0..<count { held.append(try r.digest()) }
        let holder = r.remaining >= 8 ? try r.u64() : 0
        return MountRecord(pid: pid, mountpoint: point, held: held, holder: holder)
    }

    /// Makes mount `id` hold a reference on `digest` (once).
    public func holdForMount(_ id: UInt64, _ digest: Digest) throws {
        try index.write { txn in
            guard let raw = try txn.get("mounts", Store.mountKey(id)) else { return }
            var m = try Store.decodeMount(raw)
            if m.held.contains(digest) { return }
            guard try Store.blob(txn, digest) != nil else { return }
            try Store.retain(txn, digest)
            m.held.append(digest)
            try txn.put("mounts", Store.mountKey(id), m.encoded())
        }
    }

    /// Drops a mount's record and every reference it held.
    public func unregisterMount(_ id: UInt64) throws {
        try index.write { txn in try Store.dropMount(txn, id) }
    }

    static func dropMount(_ txn: borrowing IndexTransaction, _ id: UInt64) throws {
        guard let raw = try txn.get("mounts", mountKey(id)) else { return }
        let m = try decodeMount(raw)
        try txn.delete("mounts", mountKey(id))
        for d in m.held { try release(txn, d) }
    }

    /// Drops the records of mounts whose process is gone (called by GC).
    package func dropStaleMounts(_ txn: borrowing IndexTransaction) throws {
        var stale: [UInt64] = []
        try txn.scan("mounts") { k, v in
            let m = try Store.decodeMount(v)
            let gone = m.holder != 0 ? !coordination.isAlive(token: m.holder)
                                     : kill(pid_t(m.pid), 0) != 0 && errno == ESRCH
            if gone { stale.append(UInt64(bigEndianKey: k)) }
            return true
        }
        for id in stale { try Store.dropMount(txn, id) }
    }

    /// Every digest held by mounts, for fsck's count of references.
    package static func mountHolds(_ txn: borrowing IndexTransaction) throws -> [Digest] {
        var all: [Digest] = []
        try txn.scan("mounts") { _, v in
            all += try decodeMount(v).held
            return true
        }
        return all
    }
}
