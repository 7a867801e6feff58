import BlobStore
import Foundation

/// Remembers user:password pairs bcrypt has verified, for a short time, so a client that
/// sends Basic credentials with every request (they all do) costs one bcrypt, not one per
/// request. Entries are keyed by a SHA-256 of the pair: the cache holds no passwords, and
/// a changed password misses. Bounded: when full, expired entries go, then the oldest.
final class CredentialCache: @unchecked Sendable {
    private let lifetime: Double
    private let capacity: Int
    private let lock = NSLock()
    private var expiries: [Digest: Double] = [:]

    init(lifetime: Double, capacity: Int = 4096) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    private static func key(_ user: String, _ password: String) -> Digest {
        // The length prefix keeps ("a:b", "c") and ("a", "b:c") apart.
        SHA256Hasher.hash(Array("\(user.utf8.count):\(user):\(password)".utf8))
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    func contains(user: String, password: String) -> Bool {
        guard lifetime > 0 else { return false }
        let key = Self.key(user, password)
        lock.lock()
        defer { lock.unlock() }
        guard let expiry = expiries[key] else { return false }
        if expiry > Self.now() { return true }
        expiries[key] = nil
        return false
    }

    func insert(user: String, password: String) {
        guard lifetime > 0 else { return }
        let key = Self.key(user, password)
        let now = Self.now()
        lock.lock()
        defer { lock.unlock() }
        if expiries.count >= capacity {
            expiries = expiries.filter { $0.value > now }
            if expiries.count >= capacity, let oldest = expiries.min(by: { $0.value < $1.value }) { expiries[oldest.key] = nil }
        }
        expiries[key] = now + lifetime
    }
}
