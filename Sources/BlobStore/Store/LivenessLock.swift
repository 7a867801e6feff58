import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells whether a process that holds leases or mounts on a store is still running, without
/// pids or clocks: each process holds an exclusive `flock` on a file of its own,
/// `<root>/locks/<token>.lock`, for as long as it runs. The kernel drops the lock when the
/// process dies, however it dies and in whatever pid namespace it ran, so "the lock can be
/// taken" means "its holder is gone".
///
/// A lease or mount record names its holder's token. The file is created under a temporary
/// name, locked, and only then renamed into place, so no other process ever sees it unlocked
/// while its holder lives. Each open `Store` keeps its process's lock alive; it is released
/// (and its file removed) when the last one on that root goes — by then no lease or mount
/// of this process on that store can be in use.
package final class LivenessLock: @unchecked Sendable {
    package let token: UInt64
    private let handle: FileHandle

    private let file: String

    private init(token: UInt64, handle: FileHandle, file: String) {
        self.token = token
        self.handle = handle
        self.file = file
    }

    deinit { unlink(file) } // the handle closes after this, dropping the lock

    static func directory(root: String) -> String { root + "/locks" }

    static func path(root: String, token: UInt64) -> String {
        directory(root: root) + "/" + String(token, radix: 16) + ".lock"
    }

    /// This process's lock on the store at `root`, created on first use.
    package static func mine(root: String) throws -> LivenessLock {
        let key = realpath(root, nil).map { p in defer { free(p) }; return String(cString: p) } ?? root
        registryLock.lock()
        defer { registryLock.unlock() }
        if let existing = held[key]?.lock { return existing }
        let dir = directory(root: root)
        if mkdir(dir, 0o755) != 0 && errno != EEXIST { throw BlobStoreError.io("create directory", path: dir) }
        while true {
            let token = UInt64.random(in: 1...UInt64.max)
            let final = path(root: root, token: token)
            let temporary = final + ".new"
            let handle = try FileHandle(path: temporary, flags: O_RDWR | O_CREAT | O_EXCL)
            guard handle.tryLockExclusive() else { unlink(temporary); continue }
            // link() fails when the name exists, where rename() would replace another's lock.
            if link(temporary, final) != 0 {
                let e = errno
                unlink(temporary)
                if e == EEXIST || e == ENOENT { continue } // taken, or swept by removeDead before we linked
                throw BlobStoreError.io("create lock file", path: final, errno: e)
            }
            unlink(temporary)
            let lock = LivenessLock(token: token, handle: handle, file: final)
            held = held.filter { $0.value.lock != nil }
            held[key] = WeakLock(lock: lock)
            return lock
        }
    }

    /// Whether the process holding `token` still runs. A holder that is gone has its lock
    /// file removed on the way, so dead tokens are checked once.
    package static func isAlive(root: String, token: UInt64) -> Bool {
        let key = realpath(root, nil).map { p in defer { free(p) }; return String(cString: p) } ?? root
        registryLock.lock()
        let ours = held[key]?.lock?.token == token
        registryLock.unlock()
        if ours { return true }
        let file = path(root: root, token: token)
        let fd = open(file, O_RDWR | O_CLOEXEC)
        if fd < 0 { return errno != ENOENT } // unreadable for another reason: assume alive
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            unlink(file) // its holder died; we hold the lock, so nobody else uses this name
            return false
        }
        return true
    }

    /// Removes the lock files of holders that are gone (and stray temporary files).
    package static func removeDead(root: String) {
        let dir = directory(root: root)
        let names = (FileHandle.directoryEntries(dir) ?? []).filter { $0.hasSuffix(".lock") || $0.hasSuffix(".lock.new") }
        for name in names {
            if name.hasSuffix(".lock"), let token = UInt64(name.dropLast(5), radix: 16) {
                _ = isAlive(root: root, token: token)
            } else {
                // A temporary name whose creator died before renaming it: lockable means dead.
                let fd = open(dir + "/" + name, O_RDWR | O_CLOEXEC)
                guard fd >= 0 else { continue }
                if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(dir + "/" + name) }
                close(fd)
            }
        }
    }

    private struct WeakLock { weak var lock: LivenessLock? }
    nonisolated(unsafe) private static var held: [String: WeakLock] = [:]
    private static let registryLock = NSLock()
}
