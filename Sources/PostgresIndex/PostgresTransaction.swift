import Foundation
import Logging
import NIOCore
import PostgresNIO
import BlobStore

/// One index transaction on one pooled connection (see `PostgresIndex`). Values returned
/// by `get` are copied into buffers that live until the transaction ends, as LMDB's point
/// into its map until then; a scan's values live until the page after theirs is fetched.
package final class PostgresTransaction: IndexTransactionHandle {
    private let index: PostgresIndex
    private let connection: PostgresConnection
    private var held: [UnsafeMutableRawBufferPointer] = []
    private var ended = false
    /// A failed statement leaves the connection's transaction in an unknown state: it is
    /// then closed rather than returned to the pool.
    private var broken = false
    package static let scanPage = 1024

    init(index: PostgresIndex, connection: PostgresConnection) {
        self.index = index
        self.connection = connection
    }

    deinit { abort() }

    func execute(_ sql: String, _ binds: PostgresBindings = PostgresBindings(), within seconds: Int64 = StatementDeadline.statement) throws {
        _ = try run(PostgresQuery(unsafeSQL: sql, binds: binds), within: seconds)
    }

    /// Runs a query whose one row holds one bigint.
    func count(_ sql: String) throws -> Int64 {
        let result = try run(PostgresQuery(unsafeSQL: sql))
        do { return try result.first { _ in true }?.decode(Int64.self) ?? 0 } catch {
            throw BlobStoreError(.index, "\(sql.prefix(40)): \(error)")
        }
    }

    private func run(_ query: PostgresQuery, within seconds: Int64 = StatementDeadline.statement) throws -> PostgresQueryResult {
        do {
            return try connection.query(query, logger: index.logger).wait(seconds: seconds)
        } catch {
            broken = true
            throw PostgresIndex.storeError(error, doing: "index query \(query.sql.prefix(60))")
        }
    }

    private static func bytes(_ raw: UnsafeRawBufferPointer) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: raw.count)
        buffer.writeBytes(raw)
        return buffer
    }

    /// Copies a value into memory that lives as long as the transaction.
    private func keep(_ buffer: ByteBuffer) -> UnsafeRawBufferPointer {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(buffer.readableBytes, 1), alignment: 16)
        buffer.withUnsafeReadableBytes { source in copy.copyMemory(from: source) }
        held.append(copy)
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<buffer.readableBytes])
    }

    package func get(_ db: String, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var binds = PostgresBindings(capacity: 1)
        binds.append(Self.bytes(key))
        let result = try run(PostgresQuery(unsafeSQL: "SELECT v FROM \(index.table(db)) WHERE k = $1", binds: binds))
        guard let row = result.first(where: { _ in true }) else { return nil }
        do {
            return keep(try row.decode(ByteBuffer.self))
        } catch {
            throw BlobStoreError(.index, "index value in \(db) did not decode: \(error)")
        }
    }

    package func put(_ db: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        var binds = PostgresBindings(capacity: 2)
        binds.append(Self.bytes(key))
        binds.append(Self.bytes(value))
        _ = try run(PostgresQuery(unsafeSQL: "INSERT INTO \(index.table(db)) (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                                  binds: binds))
    }

    package func delete(_ db: String, _ key: UnsafeRawBufferPointer) throws -> Bool {
        var binds = PostgresBindings(capacity: 1)
        binds.append(Self.bytes(key))
        let result = try run(PostgresQuery(unsafeSQL: "DELETE FROM \(index.table(db)) WHERE k = $1", binds: binds))
        return (result.metadata.rows ?? 0) > 0
    }

    package func scan(_ db: String, from start: [UInt8]?, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        // Pages in key order; each next page starts after the last key seen, so the visitor
        // may change the table between pages (a collector deletes what it visits).
        var after: ByteBuffer? = nil
        var from = start.map { start in start.withUnsafeBytes { Self.bytes($0) } }
        while true {
            var binds = PostgresBindings(capacity: 1)
            let condition: String
            if let key = after {
                binds.append(key)
                condition = "WHERE k > $1 "
            } else if let key = from {
                binds.append(key)
                condition = "WHERE k >= $1 "
                from = nil
            } else {
                condition = ""
            }
            let sql = "SELECT k, v FROM \(index.table(db)) \(condition)ORDER BY k LIMIT \(Self.scanPage)"
            let result = try run(PostgresQuery(unsafeSQL: sql, binds: binds))
            var count = 0
            for row in result {
                count += 1
                let (key, value): (ByteBuffer, ByteBuffer)
                do { (key, value) = try row.decode((ByteBuffer, ByteBuffer).self) } catch {
                    throw BlobStoreError(.index, "index entry in \(db) did not decode: \(error)")
                }
                let keepGoing = try key.withUnsafeReadableBytes { k in
                    try value.withUnsafeReadableBytes { v in try visit(k, v) }
                }
                if !keepGoing { return }
                after = key
            }
            if count < Self.scanPage { return }
        }
    }

    package func commit() throws {
        guard !ended else { return }
        do {
            try execute("COMMIT")
        } catch {
            finish()
            throw error
        }
        finish()
    }

    package func abort() {
        guard !ended else { return }
        if !broken {
            do { try execute("ROLLBACK") } catch { broken = true }
        }
        finish()
    }

    private func finish() {
        ended = true
        for buffer in held { buffer.deallocate() }
        held.removeAll()
        index.pool.release(connection, broken: broken)
    }
}
