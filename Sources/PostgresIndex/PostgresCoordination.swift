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

    package init(index: PostgresIndex) {
        self.index = index
        maintenanceKey = PostgresIndex.lockKey("blobstore maintenance " + index.settings.schema)
    }

    deinit {
        if let session { let closing: EventLoopFuture<Void> = session.connection.close(); _ = closing }
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
            _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(livenessKey(token)))"), logger: index.logger).wait()
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
            _ = try session.connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(packKey(id)))"), logger: index.logger).wait()
        } catch {
            throw PostgresIndex.storeError(error, doing: "lock pack \(String(id, radix: 16))")
        }
    }

    package func releasePack(_ id: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard let session else { return }
        _ = try? session.connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(\(packKey(id)))"), logger: index.logger).wait()
    }

    /// A claim on pack `id` (see `PackBackend.claim`), or nil while any node holds it. The
    /// claim keeps a pooled connection with the lock until it is released.
    package func claimPack(_ id: UInt64, size: () throws -> UInt64?) throws -> PackClaim? {
        let connection = try index.pool.take()
        let key = packKey(id)
        do {
            let got = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_try_advisory_lock(\(key))"), logger: index.logger)
                .wait().first { _ in true }?.decode(Bool.self) ?? false
            guard got else {
                index.pool.release(connection, broken: false)
                return nil
            }
        } catch {
            index.pool.release(connection, broken: true)
            throw PostgresIndex.storeError(error, doing: "claim pack \(String(id, radix: 16))")
        }
        let holder = PackClaimHolder(pool: index.pool, connection: connection, key: key, logger: index.logger)
        guard let size = try size() else { return nil } // gone meanwhile: the holder unlocks
        return PackClaim(id: id, size: size, holder: holder)
    }

    package func isAlive(token: UInt64) -> Bool {
        lock.lock()
        let ours = session.map { $0.token == token && !$0.connection.isClosed } ?? false
        lock.unlock()
        if ours { return true }
        let sql = PostgresIndex.countHoldersSQL(livenessKey(token))
        do {
            let held = try index.withConnection { connection in
                try connection.query(PostgresQuery(unsafeSQL: sql), logger: index.logger).wait().first { _ in true }?.decode(Int64.self) ?? 0
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
                .wait().first { _ in true }?.decode(Bool.self) ?? false
            if !got {
                guard wait else { return nil }
                onWait?()
                _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(maintenanceKey))"), logger: index.logger).wait()
            }
            let outcome = Result { try body() }
            // Released before the connection goes back to the pool; a failed release throws,
            // which closes the connection and so drops the lock.
            _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(\(maintenanceKey))"), logger: index.logger).wait()
            return try outcome.get()
        }
    }
}

/// Keeps a claim's advisory lock and its connection; unlocks and returns it when released.
final class PackClaimHolder: @unchecked Sendable {
    let pool: PostgresConnectionPool
    let connection: PostgresConnection
    let key: Int64
    let logger: Logger

    init(pool: PostgresConnectionPool, connection: PostgresConnection, key: Int64, logger: Logger) {
        self.pool = pool
        self.connection = connection
        self.key = key
        self.logger = logger
    }

    deinit {
        do {
            _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(\(key))"), logger: logger).wait()
            pool.release(connection, broken: false)
        } catch {
            pool.release(connection, broken: true) // closing it drops the lock
        }
    }
}
