import Foundation

/// What the processes sharing a store agree on outside its index transactions: whether a
/// process that holds leases or mounts still runs, and who is the one collector (GC,
/// compaction, settling, `fsck`) at a time. Like the index, it has two engines: file locks
/// under the store's root on one machine (`LocalCoordination`), and PostgreSQL session
/// locks in cluster mode, where processes run on several machines. Both ask the operating
/// system or the database, never clocks: a lock dies with its holder.
package protocol StoreCoordination: AnyObject, Sendable {
    /// This process's token, held for as long as the process runs; leases and mounts name it.
    func myToken() throws -> UInt64
    /// Whether the process holding `token` still runs. When it cannot tell, it says yes:
    /// a holder wrongly judged dead would lose its work, one wrongly judged alive only delays GC.
    func isAlive(token: UInt64) -> Bool
    /// Housekeeping for the tokens of processes that are gone.
    func removeDead()
    /// Runs `body` as the store's one collector. When another holds the role: with `wait`,
    /// calls `onWait` once and blocks until it is free; without, returns nil at once.
    func withMaintenanceLock<R>(wait: Bool, onWait: (() -> Void)?, _ body: () throws -> R) throws -> R?
}

/// The embedded store's coordination: `LivenessLock` files and `<root>/maintenance.lock`.
package final class LocalCoordination: StoreCoordination, @unchecked Sendable {
    let root: String
    private let lock = NSLock()
    /// Kept while this object lives, so the token stays ours.
    private var liveness: LivenessLock?

    package init(root: String) { self.root = root }

    package func myToken() throws -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        if let liveness { return liveness.token }
        let mine = try LivenessLock.mine(root: root)
        liveness = mine
        return mine.token
    }

    package func isAlive(token: UInt64) -> Bool { LivenessLock.isAlive(root: root, token: token) }

    package func removeDead() { LivenessLock.removeDead(root: root) }

    package func withMaintenanceLock<R>(wait: Bool, onWait: (() -> Void)?, _ body: () throws -> R) throws -> R? {
        try Store.withMaintenanceLock(root: root, wait: wait, onWait: onWait, body)
    }
}
