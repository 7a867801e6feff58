/// The garbage queue: objects whose count reached zero, keyed by kind and key, stamped with
/// the store generation at which that happened. Entries are added and removed in the same
/// write transaction that changes the count, so the queue is always exact; GC pops it.
package enum GarbageQueue {
    package enum Kind: UInt8, Sendable {
        case chunk = 1
        case blob = 2
    }

    package static func key(_ kind: Kind, _ digest: Digest) -> [UInt8] {
        [kind.rawValue] + digest.bytes
    }

    package static func push(_ txn: borrowing LMDBTransaction, _ kind: Kind, _ digest: Digest) throws {
        let gen = try Store.generation(txn)
        try txn.put("garbage", key(kind, digest), withUnsafeBytes(of: gen.littleEndian) { Array($0) })
    }

    package static func remove(_ txn: borrowing LMDBTransaction, _ kind: Kind, _ digest: Digest) throws {
        try txn.delete("garbage", key(kind, digest))
    }

    /// Visits entries in key order; the visitor gets the kind, the key and the generation.
    package static func scan(_ txn: borrowing LMDBTransaction, _ visit: (Kind, Digest, UInt64) throws -> Bool) throws {
        try txn.scan("garbage") { k, v in
            guard k.count == 33, v.count == 8, let kind = Kind(rawValue: k[0]) else {
                throw BlobStoreError(.corrupt, "malformed garbage queue entry")
            }
            return try visit(kind, Digest(bytes: k.baseAddress! + 1), UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)))
        }
    }
}
