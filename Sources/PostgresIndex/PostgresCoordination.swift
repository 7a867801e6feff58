import BlobStore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Cluster mode's `StoreCoordination`: PostgreSQL session-level advisory locks, which the
/// server drops when their connection ends, however the process or its machine died.
///
/// - Liveness: each process holds the advisory lock of its token on a connection of its
///   own for as long as it runs; another node asks `pg_locks` whether that lock is held.
///   If the connection is lost (the database restarted), the next `myToken` takes a new
///   token: leases named by the old one are then judged dead and their holders' commits
///   fail (a lease's commit checks its record), never index data GC was allowed to remove.
/// - The one collector: the advisory lock of the schema's maintenance key, held on a pooled
///   connection for the collection's length.
package final class PostgresCoordination: StoreCoordination, @unchecked Sendable {
    private let index: PostgresIndex
    private let lock = NSLock()
    private var session: (connection: PostgresConnection, token: UInt64)?
    private let maintenanceKey: Int64
    /// Serialises use of `claimSession`, the connection holding this process's pack claims,
    /// and of `claimed`, the lock keys it holds. Recursive: a claim dropped while claiming
    /// (its pack gone) releases itself under it.
    private let claimLock = NSRecursiveLock()
    private var claimSession: PostgresConnection?
    private var claimed: Set<Int64> = []

    package init(index: PostgresIndex) {
        self.index = index
        maintenanceKey = PostgresIndex.lockKey("blobstore maintenance " + index.settings.schema)
    }

    deinit {
        if let session { let closing: EventLoopFuture<Void> = session.connection.close(); _ = closing }
        if let claimSession { let closing: EventLoopFuture<Void> = claimSession.close(); _ = closing }
    }

    private func livenessKey(_ token: UInt64) -> Int64 {
        PostgresIndex.lockKey("blobstore liveness \(index.settings.schema) \(String(token, radix: 16))")
    }

    package func myToken() throws -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        if let session, !session.connection.isClosed { return session.token }
        session = nil
        let connection = try index.pool.connect()
        let token = UInt64.random(in: 1...UInt64.max)
        do {
            _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(livenessKey(token)))"), logger: index.logger).wait(seconds: StatementDeadline.statement)
        } catch {
            let closing: EventLoopFuture<Void> = connection.close(); _ = closing
            throw PostgresIndex.storeError(error, doing: "take this process's liveness lock")
        }
        session = (connection, token)
        index.guardWrites(withLockHeldAt: livenessKey(token)) { [weak self] in self?.sessionLost(token) }
        return token
    }

    /// The index found this process's liveness lock gone (its connection died): later calls
    /// take a new token on a new connection.
    private func sessionLost(_ token: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard let current = session, current.token == token else { return }
        let closing: EventLoopFuture<Void> = current.connection.close(); _ = closing
        session = nil
    }

    // MARK: Pack locks (the object-store pack backend)

    private func packKey(_ id: UInt64) -> Int64 {
        PostgresIndex.lockKey("blobstore pack \(index.settings.schema) \(String(id, radix: 16))")
    }

    /// Holds pack `id` against claims by any node, on this process's session, until
    /// `releasePack`: a pack written but not yet indexed is never collected.
    package func holdPack(_ id: UInt64) throws {
        _ = try myToken()
        lock.lock()
        defer { lock.unlock() }
        guard let session else { throw BlobStoreError(.unavailable, "this node lost its session with the index") }
        do {
            _ = try session.connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(packKey(id)))"), logger: index.logger).wait(seconds: StatementDeadline.statement)
        } catch {
            throw PostgresIndex.storeError(error, doing: "lock pack \(String(id, radix: 16))")
        }
    }

    package func releasePack(_ id: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard let session else { return }
        _ = try? session.connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(\(packKey(id)))"), logger: index.logger).wait(seconds: StatementDeadline.statement)
    }

    /// Claims on packs `ids` (see `PackBackend.claim`): those no node holds or claims, and
    /// whose `size` is known (nil: gone meanwhile). Locked in one round trip per thousand,
    /// all on one connection of this process's own, so a collection that claims thousands
    /// of empty packs neither takes a connection per pack nor waits on the pool. Each lock
    /// is released with its claim.
    package func claimPacks(_ ids: [UInt64], size: (UInt64) throws -> UInt64?) throws -> [PackClaim] {
        claimLock.lock()
        defer { claimLock.unlock() }
        // Advisory locks are re-entrant within a session: a pack this process has claimed
        // already must not be claimed twice.
        let wanted = ids.filter { !claimed.contains(packKey($0)) }
        var claims: [PackClaim] = []
        var start = 0
        while start < wanted.count {
            let batch = wanted[start..<min(start + 1000, wanted.count)]
            start += batch.count
            let keys = Dictionary(batch.map { (packKey($0), $0) }, uniquingKeysWith: { a, _ in a })
            let sql = "SELECT k, pg_try_advisory_lock(k) FROM unnest(ARRAY[\(keys.keys.map(String.init).joined(separator: ","))]::bigint[]) AS k"
            let granted: [Int64]
            do {
                let connection = try claimConnection()
                granted = try connection.query(PostgresQuery(unsafeSQL: sql), logger: index.logger).wait(seconds: StatementDeadline.statement)
                    .map { try $0.decode((Int64, Bool).self) }.filter(\.1).map(\.0)
            } catch {
                dropClaimConnection()
                throw PostgresIndex.storeError(error, doing: "claim \(batch.count) packs")
            }
            for key in granted {
                claimed.insert(key)
                let id = keys[key]!
                let release = PackClaimRelease(coordination: self, key: key)
                guard let known = try size(id) else { continue } // gone meanwhile: released at once
                claims.append(PackClaim(id: id, size: known, holder: release))
            }
        }
        return claims
    }

    package func claimPack(_ id: UInt64, size: () throws -> UInt64?) throws -> PackClaim? {
        try claimPacks([id]) { _ in try size() }.first
    }

    /// The connection holding this process's claims. Claim lock held.
    private func claimConnection() throws -> PostgresConnection {
        if let claimSession, !claimSession.isClosed { return claimSession }
        // Its claims went with the old connection (and are held by nobody now): forget them.
        claimed.removeAll()
        claimSession = try index.pool.connect()
        return claimSession!
    }

    /// Closing the connection drops every claim on it. Claim lock held.
    private func dropClaimConnection() {
        if let claimSession { let closing: EventLoopFuture<Void> = claimSession.close(); _ = closing }
        claimSession = nil
        claimed.removeAll()
    }

    fileprivate func releaseClaim(_ key: Int64) {
        claimLock.lock()
        defer { claimLock.unlock() }
        guard claimed.remove(key) != nil, let claimSession, !claimSession.isClosed else { return }
        do {
            _ = try claimSession.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(\(key))"), logger: index.logger).wait(seconds: StatementDeadline.statement)
        } catch {
            dropClaimConnection() // which drops the lock too
        }
    }

    package func isAlive(token: UInt64) -> Bool {
        lock.lock()
        let ours = session.map { $0.token == token && !$0.connection.isClosed } ?? false
        lock.unlock()
        if ours { return true }
        let sql = PostgresIndex.countHoldersSQL(livenessKey(token))
        do {
            let held = try index.withConnection { connection in
                try connection.query(PostgresQuery(unsafeSQL: sql), logger: index.logger).wait(seconds: StatementDeadline.statement).first { _ in true }?.decode(Int64.self) ?? 0
            }
            return held > 0
        } catch {
            index.logger.warning("cannot tell whether a lease holder is alive; keeping its work", metadata: ["error": "\(error)"])
            return true
        }
    }

    package func removeDead() {}

    package func withMaintenanceLock<R>(wait: Bool, onWait: (() -> Void)?, _ body: () throws -> R) throws -> R? {
        try index.withConnection { connection -> R? in
            let got = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_try_advisory_lock(\(maintenanceKey))"), logger: index.logger)
                .wait(seconds: StatementDeadline.statement).first { _ in true }?.decode(Bool.self) ?? false
            if !got {
                guard wait else { return nil }
                onWait?()
                _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(maintenanceKey))"), logger: index.logger).wait()
            }
            let outcome = Result { try body() }
            // Released before the connection goes back to the pool; a failed release throws,
            // which closes the connection and so drops the lock.
            _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(\(maintenanceKey))"), logger: index.logger).wait(seconds: StatementDeadline.statement)
            return try outcome.get()
        }
    }
}

/// Releases a claim's advisory lock when the claim goes.
final class PackClaimRelease: @unchecked Sendable {
    let coordination: PostgresCoordination
    let key: Int64

    init(coordination: PostgresCoordination, key: Int64) {
        self.coordination = coordination
        self.key = key
    }

    deinit { coordination.releaseClaim(key) }
}
