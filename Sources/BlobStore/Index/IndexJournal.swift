import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `<root>/index.journal`: an append-only log of what the index holds that the packs do not
/// — blob recipes, media types and pins, and the object records (images, containers,
/// volumes, manifest edges, repositories, referrers, layer indexes) — so a lost or broken
/// `index/` can be rebuilt from the journal and the packs (`fsck --rebuild-index`).
/// Counts, chunk locations, pack accounting and the garbage queue are left out: a rebuild
/// recomputes them.
///
/// Each write transaction that changes any of it appends one frame and `fdatasync`s it
/// before the transaction commits, while it holds LMDB's writer lock — so frames are in
/// commit order across processes. A crash between the two leaves a frame whose transaction
/// never committed; replaying it resurrects that one change (a blob whose bytes are in the
/// packs, or a record), never loses one.
///
/// Frame: magic "BSJ1", payload length (u32), CRC32C of the payload (u32), payload. Payload:
/// entries of op (u8), database (u8), key (u32 length + bytes), value (u32 length + bytes).
/// A torn frame (a crash mid-append) is skipped on reading by searching for the next magic.
package final class IndexJournal: IndexWriteObserver, @unchecked Sendable {
    package enum Op: UInt8 {
        case put = 1
        case delete = 2
        /// A blob's pin changed; the value is one byte.
        case pin = 3
    }

    /// The journaled databases, by their number in entries.
    package static let databases = ["blobs", "images", "containers", "volumes", "edges",
                                     "repoblobs", "repomanifests", "referrers", "layers",
                                     "claims"] // appended: a database's number is its place here
    private static let databaseNumbers = Dictionary(uniqueKeysWithValues: databases.enumerated().map { ($1, UInt8($0)) })
    static let magic: [UInt8] = Array("BSJ1".utf8)
    static let frameHeaderSize = 12

    package let path: String
    private let lock = NSLock()
    private var handle: FileHandle?
    private var handleInode: ino_t = 0

    package init(path: String) { self.path = path }

    package func observes(_ db: String) -> Bool { IndexJournal.databaseNumbers[db] != nil }

    package func record(_ db: String, key: UnsafeRawBufferPointer, old: UnsafeRawBufferPointer?, new: UnsafeRawBufferPointer?,
                        into entries: inout [UInt8]) {
        let number = IndexJournal.databaseNumbers[db]!
        guard let new else {
            if old != nil { IndexJournal.append(.delete, number, key, nil, to: &entries) }
            return
        }
        if db == "blobs", let old {
            // A blob record is rewritten on every count change; only a pin change matters
            // here (byte 1 of the record), the rest is fixed at creation.
            if old.count > 1, new.count > 1, old[1] != new[1] {
                withUnsafeBytes(of: new[1]) { IndexJournal.append(.pin, number, key, $0, to: &entries) }
            }
            return
        }
        if let old, old.elementsEqual(new) { return }
        IndexJournal.append(.put, number, key, new, to: &entries)
    }

    static func append(_ op: Op, _ db: UInt8, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer?, to out: inout [UInt8]) {
        out.append(op.rawValue)
        out.append(db)
        withUnsafeBytes(of: UInt32(key.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: key)
        withUnsafeBytes(of: UInt32(value?.count ?? 0).littleEndian) { out.append(contentsOf: $0) }
        if let value { out.append(contentsOf: value) }
    }

    static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out = magic
        out.reserveCapacity(frameHeaderSize + payload.count)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32C.checksum(payload).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: payload)
        return out
    }

    package func persist(_ entries: [UInt8]) throws {
        lock.lock()
        defer { lock.unlock() }
        let handle = try currentHandle()
        let frame = IndexJournal.frame(entries)
        let end = try handle.size()
        do {
            try frame.withUnsafeBytes { try handle.write($0, at: end) }
            if fdatasync(handle.fd) != 0 { throw BlobStoreError.io("fdatasync", path: path) }
        } catch {
            _ = try? handle.truncate(to: end) // leave no torn frame behind a failed append
            throw error
        }
    }

    /// The open journal, reopened when a snapshot replaced the file. Called only inside a
    /// write transaction, so no snapshot can replace it between this check and the append.
    private func currentHandle() throws -> FileHandle {
        var st = stat()
        if let handle, stat(path, &st) == 0, st.st_ino == handleInode { return handle }
        let fresh = try FileHandle(path: path, flags: O_WRONLY | O_CREAT)
        var fst = stat()
        guard fstat(fresh.fd, &fst) == 0 else { throw BlobStoreError.io("fstat", path: path) }
        handle = fresh
        handleInode = fst.st_ino
        return fresh
    }

    /// Replaces the journal with the current contents of the journaled databases, as seen by
    /// `txn` (a write transaction: no other process appends meanwhile). Returns its size.
    package func writeSnapshot(_ txn: borrowing IndexTransaction) throws -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let temporary = path + ".new"
        let out = try FileHandle(path: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC)
        var offset: UInt64 = 0
        var payload: [UInt8] = []
        func flush() throws {
            guard !payload.isEmpty else { return }
            let frame = IndexJournal.frame(payload)
            try frame.withUnsafeBytes { try out.write($0, at: offset) }
            offset += UInt64(frame.count)
            payload.removeAll(keepingCapacity: true)
        }
        for (number, db) in IndexJournal.databases.enumerated() {
            try txn.scan(db) { k, v in
                IndexJournal.append(.put, UInt8(number), k, v, to: &payload)
                if payload.count >= 1 << 20 { try flush() }
                return true
            }
        }
        try flush()
        try out.sync()
        if rename(temporary, path) != 0 { throw BlobStoreError.io("rename", path: path) }
        try FileHandle.syncDirectory((path as NSString).deletingLastPathComponent)
        handle = nil
        return offset
    }

    package struct Entry {
        package var op: Op
        package var database: String
        package var key: [UInt8]
        package var value: [UInt8]
    }

    /// Every intact entry, in order; returns the number of torn or damaged stretches skipped.
    package static func read(path: String, _ visit: (Entry) throws -> Void) throws -> Int {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BlobStoreError(.notFound, "no index journal at \(path): this store cannot be rebuilt")
        }
        let bytes = [UInt8](data)
        var skipped = 0
        var at = 0
        var inDamage = false
        while at + frameHeaderSize <= bytes.count {
            let length = Int(bytes[at + 4]) | Int(bytes[at + 5]) << 8 | Int(bytes[at + 6]) << 16 | Int(bytes[at + 7]) << 24
            let crc = UInt32(bytes[at + 8]) | UInt32(bytes[at + 9]) << 8 | UInt32(bytes[at + 10]) << 16 | UInt32(bytes[at + 11]) << 24
            let start = at + frameHeaderSize
            guard Array(bytes[at..<at + 4]) == magic, start + length <= bytes.count,
                  bytes[start..<start + length].withUnsafeBytes({ CRC32C.checksum($0) }) == crc else {
                if !inDamage { skipped += 1; inDamage = true }
                at += 1
                continue
            }
            inDamage = false
            try bytes[start..<start + length].withUnsafeBytes { payload in try decode(payload, visit) }
            at = start + length
        }
        if at < bytes.count && !inDamage { skipped += 1 }
        return skipped
    }

    private static func decode(_ payload: UnsafeRawBufferPointer, _ visit: (Entry) throws -> Void) throws {
        var r = BinaryReader(payload, what: "index journal frame")
        while r.remaining > 0 {
            guard let op = Op(rawValue: try r.u8()) else { throw BlobStoreError(.corrupt, "index journal: unknown entry") }
            let number = Int(try r.u8())
            guard number < databases.count else { throw BlobStoreError(.corrupt, "index journal: unknown database") }
            let key = try r.raw(Int(try r.u32()))
            let value = try r.raw(Int(try r.u32()))
            try visit(Entry(op: op, database: databases[number], key: key, value: value))
        }
    }
}
