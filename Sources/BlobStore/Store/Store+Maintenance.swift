#if canImport(Glibc)
import Glibc
#endif

/// One collector, compactor or checker at a time per store, across processes: GC, pack
/// compaction and `fsck` (above all `--repair`) each run under an exclusive `flock` on
/// `<root>/maintenance.lock`. Writers and readers never take it: they go on meanwhile.
/// The kernel drops the lock when its holder dies.
extension Store {
    /// Runs `body` holding the maintenance lock. When another process holds it: with `wait`,
    /// calls `onWait` once and blocks until it is free; without, returns nil at once.
    public func withMaintenanceLock<R>(wait: Bool, onWait: (() -> Void)? = nil, _ body: () throws -> R) throws -> R? {
        try coordination.withMaintenanceLock(wait: wait, onWait: onWait, body)
    }

    /// The same, for work that runs before the store can be opened (an index rebuild).
    public static func withMaintenanceLock<R>(root: String, wait: Bool, onWait: (() -> Void)? = nil, _ body: () throws -> R) throws -> R? {
        let path = root + "/maintenance.lock"
        let handle = try FileHandle(path: path, flags: O_RDWR | O_CREAT)
        if !handle.tryLockExclusive() {
            guard wait else { return nil }
            onWait?()
            while flock(handle.fd, LOCK_EX) != 0 {
                if errno != EINTR { throw BlobStoreError.io("lock", path: path) }
            }
        }
        return try withExtendedLifetime(handle) { try body() }
    }
}
