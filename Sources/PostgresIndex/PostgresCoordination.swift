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
        let connection = try index.pool.connectDedicated()
        let token = UInt64.random(in: 1...UInt64.max)
        do {
            _ = try connection.query(PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(\(livenessKey(token)))"), logger: index.logger).wait()
        } catch {
            let closing: EventLoopFuture<Void> = connection.close(); _ = closing
            throw PostgresIndex.storeError(error, doing: "take this process's liveness lock")
        }
        session = (connection, token)
        return token
    }

    package func isAlive(token: UInt64) -> Bool {
        lock.lock()
        let ours = session.map { $0.token == token && !$0.connection.isClosed } ?? false
        lock.unlock()
        if ours { return true }
        // A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
        let key = UInt64(bitPattern: livenessKey(token))
        let sql = """
            SELECT count(*)::int8 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
            AND classid = \(key >> 32)::int8::oid AND objid = \(key & 0xffff_ffff)::int8::oid
            """
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
