/// Counted references between objects. Every function here runs inside the caller's write
/// transaction, so a reference and the record it belongs to change together; a blob whose
/// count reaches zero (and that no user pinned) joins the garbage queue in that same
/// transaction, and leaves it if it gains a reference again.
extension Store {
    package static func blob(_ txn: borrowing IndexTransaction, _ digest: Digest) throws -> BlobRecord? {
        guard let raw = try txn.get("blobs", digest.key) else { return nil }
        return try BlobRecord(decoding: raw)
    }

    /// Adds one reference to a blob, which must exist.
    package static func retain(_ txn: borrowing IndexTransaction, _ digest: Digest) throws {
        guard var record = try blob(txn, digest) else {
            throw BlobStoreError(.notFound, "blob \(digest) not found")
        }
        if !record.isReferenced { try GarbageQueue.remove(txn, .blob, digest) }
        record.references += 1
        try txn.put("blobs", digest.key, record.encoded())
    }

    /// Drops one reference; at zero (and unpinned) the blob becomes garbage.
    package static func release(_ txn: borrowing IndexTransaction, _ digest: Digest, origin: GarbageQueue.Origin = .other) throws {
        guard var record = try blob(txn, digest) else {
            throw BlobStoreError(.corrupt, "reference to missing blob \(digest)")
        }
        guard record.references > 0 else {
            throw BlobStoreError(.corrupt, "reference count of blob \(digest) would drop below zero")
        }
        record.references -= 1
        try txn.put("blobs", digest.key, record.encoded())
        if !record.isReferenced { try GarbageQueue.push(txn, .blob, digest, origin: origin) }
    }

    /// The blobs a manifest or index refers to, once it has been expanded.
    package static func edges(_ txn: borrowing IndexTransaction, of digest: Digest) throws -> [Digest]? {
        guard let raw = try txn.get("edges", digest.key) else { return nil }
        guard raw.count % 32 == 0 else { throw BlobStoreError(.corrupt, "edge list of \(digest) is malformed") }
        return (0..<raw.count / 32).map { Digest(bytes: raw.baseAddress! + $0 * 32) }
    }

    /// Records a manifest's references to `children` (once: a manifest already expanded is
    /// left alone). Every child must be in the store.
    package static func expand(_ txn: borrowing IndexTransaction, manifest digest: Digest, children: [Digest]) throws {
        guard try blob(txn, digest) != nil else { throw BlobStoreError(.notFound, "manifest \(digest) not found") }
        if try edges(txn, of: digest) != nil { return }
        var value: [UInt8] = []
        value.reserveCapacity(children.count * 32)
        for child in children {
            do {
                try retain(txn, child)
            } catch let error as BlobStoreError where error.code == .notFound {
                throw BlobStoreError(.notFound, "manifest \(digest) refers to blob \(child), which is not in the store")
            }
            value += child.bytes
        }
        try txn.put("edges", digest.key, value)
    }
}
