internal import CLMDB
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An LMDB environment (the memory-mapped index file) with its named databases.
///
/// Long-lived and shared, so a class whose `deinit` closes the handle. Transactions are
/// scoped to a closure: `read` and `write` never let one escape, and a write commits only
/// when its closure returns normally. LMDB allows one writer at a time across all processes;
/// readers never block it. `MDB_NOTLS` lets a read transaction run on whatever thread a
/// closure happens to run on.
package final class LMDBEnvironment: @unchecked Sendable {
    let handle: OpaquePointer
    let path: String
    private var databases: [String: MDB_dbi] = [:]
    /// Sees every write to the databases it observes and persists what it recorded before
    /// each commit (the index journal). Set once, right after opening.
    package var observer: (any LMDBWriteObserver)?

    init(path: String, mapSize: Int, databaseNames: [String]) throws {
        self.path = path
        var env: OpaquePointer?
        try LMDBEnvironment.check(mdb_env_create(&env), "mdb_env_create", path)
        handle = env!
        for (rc, call) in [(mdb_env_set_maxdbs(handle, MDB_dbi(databaseNames.count + 4)), "mdb_env_set_maxdbs"),
                           (mdb_env_set_maxreaders(handle, 1024), "mdb_env_set_maxreaders"),
                           (mdb_env_set_mapsize(handle, mapSize), "mdb_env_set_mapsize")] where rc != 0 {
            mdb_env_close(handle)
            throw LMDBEnvironment.error(rc, call, path)
        }
        let rc = mdb_env_open(handle, path, UInt32(MDB_NOTLS), 0o644)
        if rc != 0 {
            mdb_env_close(handle)
            throw LMDBEnvironment.error(rc, "open index", path)
        }
        clearStaleReaders()
        do {
            try write { txn in
                for name in databaseNames {
                    var dbi: MDB_dbi = 0
                    try LMDBEnvironment.check(mdb_dbi_open(txn.handle, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open", name)
                    databases[name] = dbi
                }
            }
        } catch {
            mdb_env_close(handle)
            throw error
        }
    }

    deinit { mdb_env_close(handle) }

    /// Frees reader slots of processes that died inside a read transaction (a SIGKILL): left
    /// alone they pin old pages, so the index file grows, and eventually use up the table.
    /// Returns how many were freed.
    @discardableResult
    package func clearStaleReaders() -> Int {
        var dead: Int32 = 0
        return mdb_reader_check(handle, &dead) == 0 ? Int(dead) : 0
    }

    /// LMDB forbids opening one environment twice in a process (closing the second copy
    /// would drop the first one's locks), so every Store on the same folder shares one.
    static func shared(path: String, mapSize: Int, databaseNames: [String]) throws -> LMDBEnvironment {
        let key = realpath(path, nil).map { p in defer { free(p) }; return String(cString: p) } ?? path
        openLock.lock()
        defer { openLock.unlock() }
        if let existing = openEnvironments[key]?.environment { return existing }
        let environment = try LMDBEnvironment(path: path, mapSize: mapSize, databaseNames: databaseNames)
        openEnvironments = openEnvironments.filter { $0.value.environment != nil }
        openEnvironments[key] = WeakEnvironment(environment: environment)
        return environment
    }

    private struct WeakEnvironment { weak var environment: LMDBEnvironment? }
    nonisolated(unsafe) private static var openEnvironments: [String: WeakEnvironment] = [:]
    private static let openLock = NSLock()

    func database(_ name: String) -> MDB_dbi { databases[name]! }

    package func read<R>(_ body: (borrowing LMDBTransaction) throws -> R) throws -> R {
        var txn: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn), "begin read transaction", path)
        let transaction = LMDBTransaction(handle: txn!, environment: self)
        defer { mdb_txn_abort(txn) }
        return try body(transaction)
    }

    /// A write transaction; with `observed` false the observer does not see it (replaying
    /// the journal into a new index must not journal it again).
    package func write<R>(observed: Bool = true, _ body: (borrowing LMDBTransaction) throws -> R) throws -> R {
        var txn: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(handle, nil, 0, &txn), "begin write transaction", path)
        let recorder = observed ? observer.map { WriteRecorder(observer: $0) } : nil
        let transaction = LMDBTransaction(handle: txn!, environment: self, recorder: recorder)
        let result: R
        do {
            result = try body(transaction)
            // Persisted before the commit: what the index holds, the journal holds too.
            if let recorder, !recorder.entries.isEmpty { try recorder.observer.persist(recorder.entries) }
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try LMDBEnvironment.check(mdb_txn_commit(txn), "commit index transaction", path)
        return result
    }

    static func check(_ rc: Int32, _ operation: String, _ subject: String) throws {
        if rc != 0 { throw error(rc, operation, subject) }
    }

    static func error(_ rc: Int32, _ operation: String, _ subject: String) -> BlobStoreError {
        let text = String(cString: mdb_strerror(rc))
        if rc == MDB_MAP_FULL || rc == ENOSPC {
            return BlobStoreError(.io, "\(operation) \(subject): \(text) (index full or disk full)", errno: ENOSPC)
        }
        return BlobStoreError(.index, "\(operation) \(subject): \(text)", errno: rc)
    }
}

/// One LMDB transaction, valid only inside the closure that received it. Values returned by
/// `get` point into the memory map and are valid until the transaction ends: copy what
/// must outlive it.
package struct LMDBTransaction: ~Copyable {
    package let handle: OpaquePointer
    package let environment: LMDBEnvironment
    let recorder: WriteRecorder?

    init(handle: OpaquePointer, environment: LMDBEnvironment, recorder: WriteRecorder? = nil) {
        self.handle = handle
        self.environment = environment
        self.recorder = recorder
    }

    /// Shows a write to the observer, with the value it replaces.
    private func observe(_ db: String, _ key: UnsafeRawBufferPointer, new: UnsafeRawBufferPointer?) throws {
        guard let recorder, recorder.observer.observes(db) else { return }
        let old = try get(db, key)
        recorder.observer.record(db, key: key, old: old, new: new, into: &recorder.entries)
    }

    package func get(_ db: String, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(handle, environment.database(db), &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBEnvironment.check(rc, "get", db)
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    /// Looks a key up; the value points into the map and lives as long as the transaction.
    package func get(_ db: String, _ key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        try key.withUnsafeBytes { (k) throws -> UnsafeRawBufferPointer? in try get(db, k) }
    }

    package func put(_ db: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        try observe(db, key, new: value)
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBEnvironment.check(mdb_put(handle, environment.database(db), &k, &v, 0), "put", db)
    }

    package func put(_ db: String, _ key: [UInt8], _ value: [UInt8]) throws {
        try key.withUnsafeBytes { (k) in
            try value.withUnsafeBytes { (v) in try put(db, k, v) }
        }
    }

    /// Deletes a key; returns false when it was not there.
    @discardableResult
    package func delete(_ db: String, _ key: UnsafeRawBufferPointer) throws -> Bool {
        try observe(db, key, new: nil)
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(handle, environment.database(db), &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try LMDBEnvironment.check(rc, "delete", db)
        return true
    }

    @discardableResult
    package func delete(_ db: String, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { (k) throws -> Bool in try delete(db, k) }
    }

    /// Visits entries in key order, starting at the first key >= `start` (or the first key);
    /// the visitor returns false to stop.
    package func scan(_ db: String, from start: [UInt8]? = nil, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try LMDBEnvironment.check(mdb_cursor_open(handle, environment.database(db), &cursor), "open cursor", db)
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val()
        var v = MDB_val()
        var rc: Int32
        var startCopy = start ?? []
        if start != nil {
            rc = startCopy.withUnsafeMutableBytes { raw in
                k = MDB_val(mv_size: raw.count, mv_data: raw.baseAddress)
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
        } else {
            rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            let key = UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size)
            let value = UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
            if try !visit(key, value) { return }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try LMDBEnvironment.check(rc, "iterate", db) }
    }
}

/// Watches writes to some databases and makes a record of them durable before each commit.
package protocol LMDBWriteObserver: AnyObject, Sendable {
    func observes(_ db: String) -> Bool
    /// Called for every put (`new` set) and delete (`new` nil) on an observed database, with
    /// the value it replaces; appends whatever it wants kept to `entries`.
    func record(_ db: String, key: UnsafeRawBufferPointer, old: UnsafeRawBufferPointer?, new: UnsafeRawBufferPointer?, into entries: inout [UInt8])
    /// Makes `entries` durable; called inside the transaction, before it commits. Throwing
    /// aborts the transaction.
    func persist(_ entries: [UInt8]) throws
}

/// What one write transaction recorded for the observer.
final class WriteRecorder {
    let observer: any LMDBWriteObserver
    var entries: [UInt8] = []
    init(observer: any LMDBWriteObserver) { self.observer = observer }
}
