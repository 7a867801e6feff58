#if canImport(Glibc)
import Glibc
#endif

/// A hold keeps one unreferenced blob from collection until a deadline: a registry upload
/// finished before its manifest arrives, or a cross-repository mount. Unlike a lease it
/// protects only that blob, so garbage elsewhere is collected as usual meanwhile.
extension Store {
    /// Holds `digest` for `seconds` (extending an earlier, shorter hold).
    public func hold(_ digest: Digest, seconds: UInt64) throws {
        try index.write { txn in try Store.hold(txn, digest, seconds: seconds) }
    }

    package static func hold(_ txn: borrowing IndexTransaction, _ digest: Digest, seconds: UInt64) throws {
        let until = UInt64(time(nil)) + seconds
        if let raw = try txn.get("holds", digest.key), raw.count == 8,
           UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) >= until { return }
        try txn.put("holds", digest.key, withUnsafeBytes(of: until.littleEndian) { Array($0) })
    }

    /// Whether an unexpired hold protects `digest`; an expired one is dropped.
    package static func isHeld(_ txn: borrowing IndexTransaction, _ digest: Digest) throws -> Bool {
        guard let raw = try txn.get("holds", digest.key), raw.count == 8 else { return false }
        if UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) > UInt64(time(nil)) { return true }
        try txn.delete("holds", digest.key)
        return false
    }
}
