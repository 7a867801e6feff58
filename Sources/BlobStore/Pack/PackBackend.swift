/// Where pack files live. The store speaks only this protocol, so a second backend (packs in
/// an object store, with the LMDB index kept local) can be added without touching it.
/// Packs are immutable once written, which is what makes such a backend simple.
public protocol PackBackend: AnyObject, Sendable {
    /// Appends records to this process's open pack(s) and returns where each landed.
    func append(_ records: [PendingRecord]) throws -> [ChunkLocation]
    /// Makes every record appended so far durable. Called before the index points at them.
    func sync() throws
    /// Reads `count` bytes of pack `id` at `offset` into `buffer`; returns the bytes read.
    func read(pack id: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Every pack that exists, with its size in bytes.
    func packs() throws -> [(id: UInt64, size: UInt64)]
    /// Locks a pack no process is appending to, so it can be removed safely; nil when one is.
    /// The claim holds the lock until it is released.
    func claim(pack id: UInt64) throws -> PackClaim?
    /// Removes a pack that the index no longer points into.
    func remove(pack id: UInt64) throws
    /// Closes this process's open pack so nothing more is appended to it.
    func seal() throws
}

/// A chunk ready to be appended: its key, its payload (compressed or raw) and the payload's
/// CRC, computed by the worker that compressed it.
public struct PendingRecord: @unchecked Sendable {
    public var key: Digest
    public var flags: ChunkFlags
    public var rawSize: UInt32
    public var payload: UnsafeRawBufferPointer
    public var checksum: UInt32
}

/// Exclusive hold on a pack about to be removed: while it exists no writer can adopt the pack.
public final class PackClaim: @unchecked Sendable {
    public let id: UInt64
    /// Seconds since 1970 of the pack's last write.
    public let modifiedAt: UInt64
    let holder: AnyObject

    init(id: UInt64, modifiedAt: UInt64, holder: AnyObject) {
        self.id = id
        self.modifiedAt = modifiedAt
        self.holder = holder
    }
}
