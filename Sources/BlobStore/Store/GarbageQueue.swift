/// The garbage queue: objects whose count reached zero, keyed by kind and key, stamped with
/// the store generation at which that happened and what let go of it last (so `gc` can say
/// what it frees per kind of object). Entries are added and removed in the same write
/// transaction that changes the count, so the queue is always exact; GC pops it.
package enum GarbageQueue {
    package enum Kind: UInt8, Sendable {
        case chunk = 1
        case blob = 2
    }

    /// What dropped a blob's last reference: a removed image (and what its manifests held),
    /// container, or volume version, an upload or unpinned ingest nothing came to use, or
    /// anything else (`blobctl rm`, mounts, claims).
    public enum Origin: UInt8, Sendable, CaseIterable {
        case other = 0, image = 1, container = 2, volume = 3, upload = 4

        public var name: String {
            switch self {
            case .other: "other"
            case .image: "images"
            case .container: "containers"
            case .volume: "volumes"
            case .upload: "uploads"
            }
        }
    }

    package static func key(_ kind: Kind, _ digest: Digest) -> [UInt8] {
        [kind.rawValue] + digest.bytes
    }

    package static func push(_ txn: borrowing IndexTransaction, _ kind: Kind, _ digest: Digest, origin: Origin = .other) throws {
        let gen = try Store.generation(txn)
        try txn.put("garbage", key(kind, digest), withUnsafeBytes(of: gen.littleEndian) { Array($0) } + [origin.rawValue])
    }

    package static func remove(_ txn: borrowing IndexTransaction, _ kind: Kind, _ digest: Digest) throws {
        try txn.delete("garbage", key(kind, digest))
    }

    /// Visits entries in key order; the visitor gets the kind, the key, the generation and
    /// the origin (`.other` for entries written before origins were kept).
    package static func scan(_ txn: borrowing IndexTransaction, _ visit: (Kind, Digest, UInt64, Origin) throws -> Bool) throws {
        try txn.scan("garbage") { k, v in
            guard k.count == 33, v.count == 8 || v.count == 9, let kind = Kind(rawValue: k[0]) else {
                throw BlobStoreError(.corrupt, "malformed garbage queue entry")
            }
            let origin = v.count == 9 ? Origin(rawValue: v[8]) ?? .other : .other
            return try visit(kind, Digest(bytes: k.baseAddress! + 1), UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)), origin)
        }
    }
}
