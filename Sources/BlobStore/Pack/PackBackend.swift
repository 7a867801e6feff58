/// Where pack files live. The store speaks only this protocol, so a second backend (packs in
/// an object store, with the LMDB index kept local) can be added without touching it.
/// Packs are immutable once written, which is what makes such a backend simple.
public protocol PackBackend: AnyObject, Sendable {
    /// Starts a unit of writing whose records the index will point at only later (an
    /// ingest, a compaction's copies). Until `endWriting`, every pack it appended to stays
    /// locked against claims — even after this process moved on to another pack — so no
    /// collector removes or compacts a pack holding records not indexed yet.
    func beginWriting() -> PackWriter
    /// Ends a unit of writing (after its index transaction, or when it is abandoned).
    func endWriting(_ writer: PackWriter)
    /// Appends records to this process's open pack(s) for `writer` and returns where each
    /// landed. A frame's records (`.framed`, see `PackFormat`) land together in one pack, in
    /// order, back to back. After a failed write the torn tail is cut off where possible and the next
    /// append goes to a new pack: nothing is ever appended behind a torn stretch.
    func append(_ records: [PendingRecord], for writer: PackWriter) throws -> [ChunkLocation]
    /// Makes every record appended so far durable. Called before the index points at them.
    func sync() throws
    /// Reads `count` bytes of pack `id` at `offset` into `buffer`; returns the bytes read.
    func read(pack id: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Every pack that exists, with its size in bytes.
    func packs() throws -> [(id: UInt64, size: UInt64)]
    /// Locks a pack no process is appending to, so it can be removed safely; nil when one is.
    /// The claim holds the lock until it is released.
    func claim(pack id: UInt64) throws -> PackClaim?
    /// Claims of those of `ids` that can be claimed now (see `claim(pack:)`), in as few
    /// round trips as the backend allows.
    func claim(packs ids: [UInt64]) throws -> [PackClaim]
    /// Removes a pack that the index no longer points into.
    func remove(pack id: UInt64) throws
    /// Removes packs the index no longer points into in as few requests as the backend
    /// allows (object storage deletes a thousand per request); returns those it could not
    /// remove, with why.
    func remove(packs ids: [UInt64]) -> [(id: UInt64, error: any Error)]
    /// Housekeeping, cheap enough to run every few seconds: closes read handles of packs
    /// another process removed (so their space is freed) and removes what pack creations
    /// that died half-way left.
    func sweep()
    /// Closes this process's open pack so nothing more is appended to it.
    func seal() throws
    /// Stores a whole, sealed pack under its id, reading its `size` bytes through `source`
    /// (offset, buffer → bytes read): `blobctl migrate` moving packs between backends. The
    /// pack is durable when this returns.
    func importPack(id: UInt64, size: UInt64, from source: (UInt64, UnsafeMutableRawBufferPointer) throws -> Int) throws
}

extension PackBackend {
    public func claim(packs ids: [UInt64]) throws -> [PackClaim] {
        try ids.compactMap { try claim(pack: $0) }
    }

    /// One at a time, for backends where a removal is one cheap call anyway (local files).
    public func remove(packs ids: [UInt64]) -> [(id: UInt64, error: any Error)] {
        var failures: [(id: UInt64, error: any Error)] = []
        for id in ids {
            do { try remove(pack: id) } catch { failures.append((id, error)) }
        }
        return failures
    }
}

/// A chunk ready to be appended: its key, its payload (compressed or raw) and the payload's
/// CRC, computed by the worker that compressed it.
public struct PendingRecord: @unchecked Sendable {
    public var key: Digest
    public var flags: ChunkFlags
    public var rawSize: UInt32
    public var payload: UnsafeRawBufferPointer
    public var checksum: UInt32
    /// For a `.framed` record: bytes back to its frame's first record, i.e. the record sizes
    /// (header and payload) of the frame's records before it in the same `append`.
    public var frameBack: UInt32

    public init(key: Digest, flags: ChunkFlags, rawSize: UInt32, payload: UnsafeRawBufferPointer, checksum: UInt32, frameBack: UInt32 = 0) {
        self.key = key
        self.flags = flags
        self.rawSize = rawSize
        self.payload = payload
        self.checksum = checksum
        self.frameBack = frameBack
    }
}

/// One unit of writing (see `PackBackend.beginWriting`).
public struct PackWriter: Hashable, Sendable {
    public let id: UInt64
    public init(id: UInt64) { self.id = id }
}

/// Exclusive hold on a pack about to be removed: while it exists no writer can adopt the pack.
public final class PackClaim: @unchecked Sendable {
    public let id: UInt64
    /// The pack's size, read after the lock was taken: a writer that held it before may
    /// have appended (and committed) records past any size listed earlier.
    public let size: UInt64
    let holder: AnyObject

    package init(id: UInt64, size: UInt64, holder: AnyObject) {
        self.id = id
        self.size = size
        self.holder = holder
    }
}
