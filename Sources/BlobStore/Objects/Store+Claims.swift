import Foundation

/// A claim: a named client's counted reference on a blob, with labels — how an outside
/// content store (containerd's, through its proxy plugin) holds the blobs it knows about.
///
/// Such a client sees only what it claimed: it lists its claims, and deleting "its" blob
/// drops its claim, never the blob itself, which may be held by images, volumes or the
/// registry too. The blob goes once nothing holds it. Claims are index roots: `fsck`
/// counts them, `gc` keeps what they hold, and the journal keeps them for an index
/// rebuild.
public struct BlobClaim: Sendable, Equatable, Codable {
    public var holder: String
    public var digest: Digest
    public var labels: [String: String]
    /// Seconds since 1970.
    public var createdAt: UInt64
    public var updatedAt: UInt64

    func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.u8(1)
        w.u64(createdAt)
        w.u64(updatedAt)
        w.u32(UInt32(labels.count))
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            w.string(k)
            w.string(v)
        }
        return w.bytes
    }

    init(holder: String, digest: Digest, labels: [String: String], createdAt: UInt64, updatedAt: UInt64) {
        self.holder = holder
        self.digest = digest
        self.labels = labels
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    init(holder: String, digest: Digest, decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "claim of \(digest) by \(holder)")
        guard try r.u8() == 1 else { throw BlobStoreError(.unsupportedFormat, "claim of \(digest) by \(holder) has an unknown version") }
        self.holder = holder
        self.digest = digest
        createdAt = try r.u64()
        updatedAt = try r.u64()
        labels = [:]
        for _ in 0..<Int(try r.u32()) { labels[try r.string()] = try r.string() }
    }
}

extension Store {
    /// Key: holder name, a zero byte, the digest's 32 bytes (a holder's claims are adjacent).
    static func claimKey(_ holder: String, _ digest: Digest) -> [UInt8] { Array(holder.utf8) + [0] + digest.bytes }

    private static func validateHolder(_ holder: String) throws {
        guard !holder.isEmpty, !holder.utf8.contains(0), holder.utf8.count <= 64 else {
            throw BlobStoreError(.invalidArgument, "invalid claim holder \"\(holder)\"")
        }
    }

    /// Claims `digest` for `holder` (the blob must be stored); claiming it again only
    /// replaces the labels when some are given. Returns the claim.
    @discardableResult
    public func claim(_ digest: Digest, by holder: String, labels: [String: String]? = nil) throws -> BlobClaim {
        try Store.validateHolder(holder)
        return try index.write { txn in try Store.claim(txn, digest, by: holder, labels: labels) }
    }

    package static func claim(_ txn: borrowing IndexTransaction, _ digest: Digest, by holder: String, labels: [String: String]?) throws -> BlobClaim {
        let key = claimKey(holder, digest)
        let now = UInt64(Date().timeIntervalSince1970)
        if let raw = try txn.get("claims", key) {
            var existing = try BlobClaim(holder: holder, digest: digest, decoding: raw)
            if let labels, labels != existing.labels {
                existing.labels = labels
                existing.updatedAt = now
                try txn.put("claims", key, existing.encoded())
            }
            return existing
        }
        try retain(txn, digest)
        let claim = BlobClaim(holder: holder, digest: digest, labels: labels ?? [:], createdAt: now, updatedAt: now)
        try txn.put("claims", key, claim.encoded())
        return claim
    }

    /// `holder`'s claim on `digest`, if any.
    public func claim(of digest: Digest, by holder: String) throws -> BlobClaim? {
        try index.read { txn in
            guard let raw = try txn.get("claims", Store.claimKey(holder, digest)) else { return nil }
            return try BlobClaim(holder: holder, digest: digest, decoding: raw)
        }
    }

    /// Replaces the labels of `holder`'s claim on `digest` (not found when there is none).
    @discardableResult
    public func relabelClaim(_ digest: Digest, by holder: String, labels: [String: String]) throws -> BlobClaim {
        try index.write { txn in
            let key = Store.claimKey(holder, digest)
            guard let raw = try txn.get("claims", key) else { throw BlobStoreError(.notFound, "\(digest) is not claimed by \(holder)") }
            var claim = try BlobClaim(holder: holder, digest: digest, decoding: raw)
            claim.labels = labels
            claim.updatedAt = UInt64(Date().timeIntervalSince1970)
            try txn.put("claims", key, claim.encoded())
            return claim
        }
    }

    /// Drops `holder`'s claim; the blob stays while anything else holds it. False when
    /// there was no such claim.
    @discardableResult
    public func unclaim(_ digest: Digest, by holder: String) throws -> Bool {
        try index.write { txn in
            let key = Store.claimKey(holder, digest)
            guard try txn.get("claims", key) != nil else { return false }
            try txn.delete("claims", key)
            try Store.release(txn, digest)
            return true
        }
    }

    /// Every claim of `holder`, by digest.
    public func claims(by holder: String) throws -> [BlobClaim] {
        let prefix = Array(holder.utf8) + [0]
        return try index.read { txn in
            var result: [BlobClaim] = []
            try txn.scan("claims", from: prefix) { k, v in
                guard k.starts(with: prefix) else { return false } // past this holder's claims
                if k.count == prefix.count + 32 {
                    result.append(try BlobClaim(holder: holder, digest: Digest(bytes: k.baseAddress! + prefix.count), decoding: v))
                }
                return true
            }
            return result
        }
    }

    /// The digests every claim holds (one entry per claim), for the audit.
    package static func claimedDigests(_ txn: borrowing IndexTransaction) throws -> [Digest] {
        var result: [Digest] = []
        try txn.scan("claims") { k, _ in
            if k.count > 32 { result.append(Digest(bytes: k.baseAddress! + k.count - 32)) }
            return true
        }
        return result
    }
}
