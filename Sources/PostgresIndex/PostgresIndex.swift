import Foundation
import Logging
import NIOCore
import PostgresNIO
import BlobStore

/// The cluster's index engine: the store's named databases as tables of a PostgreSQL
/// schema (`<schema>.<database>`, columns `k bytea PRIMARY KEY, v bytea`), with LMDB's
/// transaction rules kept (see `IndexEngine`):
///
/// - A read transaction is `REPEATABLE READ, READ ONLY`: one snapshot, as an LMDB reader.
/// - A write transaction first takes a transaction-level advisory lock of the schema, so
///   writers run one at a time across every node, as LMDB's single writer does on one
///   machine. The lock dies with the transaction or its connection, so a node that dies
///   mid-write never blocks the others (no clocks, no lease to expire). Writes are a few
///   milliseconds, so one writer at a time is not what limits a cluster of this size; the
///   README's "Scaling out" models where it would.
/// - bytea compares bytewise, so `ORDER BY k` is LMDB's key order and scans agree.
package final class PostgresIndex: IndexEngine, @unchecked Sendable {
    package let settings: PostgresSettings
    package var observer: (any IndexWriteObserver)?
    let pool: PostgresConnectionPool
    let logger: Logger
    /// The advisory lock key that serialises this schema's writers.
    let writerLockKey: Int64
    /// `"schema"."database"` for every database, quoted once.
    let tables: [String: String]
    /// Once this process holds a liveness lock (see `PostgresCoordination`): its key, checked
    /// by every write transaction under the writer lock, and what to do when it is gone.
    private var writeGuard: (key: Int64, lost: @Sendable () -> Void)?
    private let guardLock = NSLock()

    /// Connects and creates the schema and its tables when missing (idempotent, and safe
    /// when several nodes start at once: it runs under the writer lock).
    package init(settings: PostgresSettings, databaseNames: [String], logger: Logger) throws {
        do { try settings.validate() } catch { throw BlobStoreError(.invalidArgument, "\(error)") }
        self.settings = settings
        self.logger = logger
        let endpoint: PostgresSettings.Endpoint
        do { endpoint = try settings.endpoint() } catch { throw BlobStoreError(.invalidArgument, "\(error)") }
        pool = PostgresConnectionPool(endpoint: endpoint, limit: settings.maxConnections, logger: logger)
        writerLockKey = PostgresIndex.lockKey("blobstore writer " + settings.schema)
        tables = Dictionary(uniqueKeysWithValues: databaseNames.map { ($0, "\"\(settings.schema)\".\"\($0)\"") })
        let handle = try begin(writing: true) as! PostgresTransaction
        do {
            try handle.execute("CREATE SCHEMA IF NOT EXISTS \"\(settings.schema)\"")
            for table in tables.values.sorted() {
                try handle.execute("CREATE TABLE IF NOT EXISTS \(table) (k bytea PRIMARY KEY, v bytea NOT NULL)")
            }
            try handle.commit()
        } catch {
            handle.abort()
            throw error
        }
    }

    package func begin(writing: Bool) throws -> any IndexTransactionHandle {
        let connection = try pool.take()
        let transaction = PostgresTransaction(index: self, connection: connection)
        do {
            if writing {
                try transaction.execute("BEGIN")
                try transaction.execute("SELECT pg_advisory_xact_lock(\(writerLockKey))", within: StatementDeadline.writerLock)
                try checkWriteGuard(transaction)
            } else {
                try transaction.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            }
        } catch {
            transaction.abort()
            throw error
        }
        return transaction
    }

    /// Runs `body` on a pooled connection outside any transaction; a failure that may have
    /// broken the connection closes it.
    package func withConnection<R>(_ body: (PostgresConnection) throws -> R) throws -> R {
        let connection = try pool.take()
        do {
            let result = try body(connection)
            pool.release(connection, broken: false)
            return result
        } catch {
            // The database's errors may leave the connection unusable; the caller's own go through.
            let fromDatabase = error is PSQLError || error is NIOCore.IOError || error is ChannelError
            pool.release(connection, broken: fromDatabase)
            throw fromDatabase ? PostgresIndex.storeError(error, doing: "index query") : error
        }
    }

    /// Makes every later write transaction check that the lock `key` is still held: a
    /// process whose session died was judged dead by the other nodes (its leases ended, its
    /// packs unlocked), so it must not commit anything that relied on them.
    func guardWrites(withLockHeldAt key: Int64, lost: @escaping @Sendable () -> Void) {
        guardLock.lock()
        writeGuard = (key, lost)
        guardLock.unlock()
    }

    private func checkWriteGuard(_ transaction: PostgresTransaction) throws {
        guardLock.lock()
        let current = writeGuard
        guardLock.unlock()
        guard let current else { return }
        let held = try transaction.count(PostgresIndex.countHoldersSQL(current.key))
        guard held == 0 else { return }
        guardLock.lock()
        if writeGuard?.key == current.key { writeGuard = nil }
        guardLock.unlock()
        current.lost()
        throw BlobStoreError(.unavailable, "this node lost its session with the index database (its leases and pack locks ended); retry")
    }

    /// PostgreSQL frees a dead client's locks and transactions itself.
    package func clearStaleReaders() -> Int { 0 }

    /// Drops the schema and everything in it (tests, and `blobctl migrate` undoing a half-made copy).
    package func dropEverything() throws {
        let handle = try begin(writing: true) as! PostgresTransaction
        try handle.execute("DROP SCHEMA IF EXISTS \"\(settings.schema)\" CASCADE")
        try handle.commit()
    }

    func table(_ db: String) -> String {
        guard let table = tables[db] else { preconditionFailure("no index database named \(db)") }
        return table
    }

    /// How many sessions hold the advisory lock `key` in this database: a bigint key shows
    /// in `pg_locks` as classid (its high half) and objid (its low half).
    static func countHoldersSQL(_ key: Int64) -> String {
        let bits = UInt64(bitPattern: key)
        return """
            SELECT count(*)::int8 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
            AND classid = \(bits >> 32)::int8::oid AND objid = \(bits & 0xffff_ffff)::int8::oid
            """
    }

    /// FNV-1a of a name: a stable 64-bit advisory lock key.
    static func lockKey(_ name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: hash)
    }

    /// The store's view of a PostgreSQL failure: the server or the way to it gone (an
    /// `unavailable` error: the registry answers 503 and a retry may succeed) or a query the
    /// server refused (an `index` error).
    static func storeError(_ error: any Error, doing operation: String) -> BlobStoreError {
        if let error = error as? BlobStoreError { return error }
        if let error = error as? PSQLError {
            if error.code == .server, let state = error.serverInfo?[.sqlState] {
                let message = error.serverInfo?[.message] ?? "\(error.code)"
                // Class 08 (connection), 57P (operator intervention: shutdown, restart), 53 (resources).
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") {
                    return BlobStoreError(.unavailable, "\(operation): the index database is unavailable: \(message) (SQLSTATE \(state))")
                }
                return BlobStoreError(.index, "\(operation): \(message) (SQLSTATE \(state))")
            }
            return BlobStoreError(.unavailable, "\(operation): the index database is unreachable: \(error.code)")
        }
        if error is NIOCore.IOError || error is ChannelError {
            return BlobStoreError(.unavailable, "\(operation): the index database is unreachable: \(error)")
        }
        return BlobStoreError(.unavailable, "\(operation): \(error)")
    }
}
