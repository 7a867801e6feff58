import Foundation

/// Copies a whole store into a new one on other engines (`blobctl migrate`: an embedded
/// store into a cluster and back), then proves the copy: every index entry and every pack
/// byte compared by SHA-256 against the source.
///
/// The copy is raw, not a re-ingest: index entries are written as they are and packs keep
/// their ids and bytes, so every chunk location stays valid and nothing is decompressed or
/// re-chunked. The target must be empty and unpublished (nobody opens it until the caller
/// publishes it after `copy` returns); the source is only read, except that its dead
/// leases and mounts are ended first, as its next `gc` would.
///
/// Consistency: the source's collector lock is held throughout (no pack is compacted or
/// removed), and the index is read in one snapshot taken before the packs are listed, so
/// every pack a copied entry points at is copied. Work committed to the source after the
/// snapshot is not in the target: stop writers first. Processes that hold live leases or
/// mounts on the source make `copy` refuse. Unfinished resumable uploads are not carried
/// over (their state lives in the source's folder); their clients start them again.
package enum StoreMigration {
    package struct Report: Codable, Sendable {
        /// Entries copied per index database.
        package var entries: [String: Int] = [:]
        package var packs = 0
        package var packBytes: UInt64 = 0
        /// Unfinished resumable uploads left behind.
        package var droppedUploads = 0
        package var seconds = 0.0
    }

    /// Where the copy is, for a progress display: `packBytes` of `totalPackBytes` copied.
    package struct Progress: Sendable {
        package var phase: String
        package var packBytes: UInt64
        package var totalPackBytes: UInt64
    }

    /// Meta entries that belong to one engine, not to the store: the cluster's copy of the
    /// store config (the target writes its own when published) and the journal's bookkeeping.
    static let engineMetaKeys: Set<[UInt8]> = [Store.storeConfigMetaKey, Store.snapshotSizeKey]

    /// Databases of unfinished work, left behind: once live holders are refused, every lease
    /// left is an unfinished resumable upload's, and `ingests` holds those uploads.
    static let notCopied: Set<String> = ["leases", "ingests"]

    /// Entries per target write transaction: bounded so a PostgreSQL transaction stays small.
    static let batchSize = 5_000

    package static func copy(from source: Store, to target: Store, progress: (Progress) -> Void = { _ in }) throws -> Report {
        let started = Date()
        let result = try source.coordination.withMaintenanceLock(wait: false, onWait: nil) { () throws -> Report in
            var report = Report()
            progress(Progress(phase: "index", packBytes: 0, totalPackBytes: 0))
            try clear(target)
            // What the source's next gc would do, so no dead holder's entry is copied.
            try source.index.write { txn in
                _ = try source.endDeadLeases(txn)
                try source.dropStaleMounts(txn)
            }
            let sourceDigests = try source.index.read { txn in try copyIndex(txn, to: target, report: &report) }
            let targetDigests = try target.index.read { txn in try digests(txn) }
            for (db, digest) in sourceDigests where targetDigests[db] != digest {
                throw BlobStoreError(.corrupt, "migration: the copy of index database \(db) differs from the source's")
            }
            let packs = try source.packs.packs()
            let total = packs.reduce(UInt64(0)) { $0 + $1.size }
            for pack in packs {
                try copyPack(pack.id, size: pack.size, from: source.packs, to: target.packs)
                report.packs += 1
                report.packBytes += pack.size
                progress(Progress(phase: "packs", packBytes: report.packBytes, totalPackBytes: total))
            }
            return report
        }
        guard var report = result else {
            throw BlobStoreError(.unavailable, "a gc, settle or fsck is running on the source store; migrate once it has finished")
        }
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    /// Empties every database of the target (what a migration that died half-way wrote),
    /// keeping the target engine's own meta entries.
    private static func clear(_ target: Store) throws {
        for db in Store.databases {
            while true {
                let removed = try target.index.write { txn -> Int in
                    var keys: [[UInt8]] = []
                    try txn.scan(db) { k, _ in
                        let key = Array(k)
                        if !(db == "meta" && engineMetaKeys.contains(key)) { keys.append(key) }
                        return keys.count < batchSize
                    }
                    for k in keys { try txn.delete(db, k) }
                    return keys.count
                }
                if removed < batchSize { break }
            }
        }
    }

    /// Copies the index from one source snapshot; returns each copied database's digest.
    private static func copyIndex(_ txn: borrowing IndexTransaction, to target: Store, report: inout Report) throws -> [String: Digest] {
        // Holders still running would go on writing to the source after the copy.
        for lease in try Store.leases(txn) where lease.holder != 0 || lease.pid != 0 {
            throw BlobStoreError(.alreadyExists, "the source store is in use (pid \(lease.pid) holds a lease for \(lease.purpose)); stop the processes using it and migrate again")
        }
        var mounts = 0
        try txn.scan("mounts") { _, _ in mounts += 1; return true }
        if mounts > 0 {
            throw BlobStoreError(.alreadyExists, "the source store is mounted (\(mounts) mounts); unmount it and migrate again")
        }
        try txn.scan("ingests") { _, _ in report.droppedUploads += 1; return true }

        var result: [String: Digest] = [:]
        for db in Store.databases where !notCopied.contains(db) {
            var batch: [([UInt8], [UInt8])] = []
            var hasher = EntryHasher()
            var count = 0
            func flush() throws {
                guard !batch.isEmpty else { return }
                try target.index.write { out in
                    for (k, v) in batch { try out.put(db, k, v) }
                }
                batch.removeAll(keepingCapacity: true)
            }
            try txn.scan(db) { k, v in
                let key = Array(k)
                if db == "meta" && engineMetaKeys.contains(key) { return true }
                hasher.add(k, v)
                count += 1
                batch.append((key, Array(v)))
                if batch.count >= batchSize { try flush() }
                return true
            }
            try flush()
            report.entries[db] = count
            result[db] = hasher.finalize()
        }
        return result
    }

    /// Each database's digest as `copyIndex` computes it, read from the target.
    private static func digests(_ txn: borrowing IndexTransaction) throws -> [String: Digest] {
        var result: [String: Digest] = [:]
        for db in Store.databases where !notCopied.contains(db) {
            var hasher = EntryHasher()
            try txn.scan(db) { k, v in
                if db == "meta" && engineMetaKeys.contains(Array(k)) { return true }
                hasher.add(k, v)
                return true
            }
            result[db] = hasher.finalize()
        }
        return result
    }

    /// Copies one pack, then reads the target's copy back: both must hash alike.
    private static func copyPack(_ id: UInt64, size: UInt64, from source: any PackBackend, to target: any PackBackend) throws {
        let name = PackFormat.fileName(for: id)
        var written = SHA256Hasher()
        try target.importPack(id: id, size: size) { offset, buffer in
            let n = try source.read(pack: id, at: offset, into: buffer)
            if n <= 0 { throw BlobStoreError(.corrupt, "migration: source pack \(name) ends before its listed \(size) bytes") }
            written.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            return n
        }
        var readBack = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let want = Int(min(UInt64(buffer.count), size - offset))
            let n = try target.read(pack: id, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            if n <= 0 { break }
            readBack.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += UInt64(n)
        }
        guard offset == size, readBack.finalize() == written.finalize() else {
            throw BlobStoreError(.corrupt, "migration: pack \(name) reads back differently from the target (\(offset) of \(size) bytes)")
        }
    }
}

/// SHA-256 over a database's entries in key order, each as its lengths and bytes.
private struct EntryHasher {
    private var hasher = SHA256Hasher()

    mutating func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        withUnsafeBytes(of: (UInt32(key.count).littleEndian, UInt32(value.count).littleEndian)) { hasher.update($0) }
        hasher.update(key)
        hasher.update(value)
    }

    func finalize() -> Digest { hasher.finalize() }
}
