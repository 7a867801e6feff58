internal import CLMDB
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The embedded index engine: an LMDB environment (the memory-mapped index file) with its
/// named databases.
///
/// Long-lived and shared, so a class whose `deinit` closes the handle. LMDB allows one
/// writer at a time across all processes; readers never block it. `MDB_NOTLS` lets a read transaction run on whatever thread a
/// closure happens to run on.
package final class LMDBEnvironment: IndexEngine, @unchecked Sendable {
    let handle: OpaquePointer
    let path: String
    private var databases: [String: MDB_dbi] = [:]
    /// Sees every write to the databases it observes and persists what it recorded before
    /// each commit (the index journal). Set once, right after opening.
    package var observer: (any IndexWriteObserver)?

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
            let txn = try begin(writing: true) as! LMDBTransaction
            for name in databaseNames {
                var dbi: MDB_dbi = 0
                try LMDBEnvironment.check(mdb_dbi_open(txn.handle, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open", name)
                databases[name] = dbi
            }
            try txn.commit()
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

    package func begin(writing: Bool) throws -> any IndexTransactionHandle {
        var txn: OpaquePointer?
        try LMDBEnvironment.check(mdb_txn_begin(handle, nil, writing ? 0 : UInt32(MDB_RDONLY), &txn),
                                  writing ? "begin write transaction" : "begin read transaction", path)
        return LMDBTransaction(handle: txn!, environment: self)
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

/// One LMDB transaction. Values returned by `get` and given to `scan` point into the
/// memory map and are valid until the transaction ends.
final class LMDBTransaction: IndexTransactionHandle {
    let handle: OpaquePointer
    let environment: LMDBEnvironment
    private var ended = false

    init(handle: OpaquePointer, environment: LMDBEnvironment) {
        self.handle = handle
        self.environment = environment
    }

    deinit { if !ended { mdb_txn_abort(handle) } }

    func commit() throws {
        ended = true
        try LMDBEnvironment.check(mdb_txn_commit(handle), "commit index transaction", environment.path)
    }

    func abort() {
        guard !ended else { return }
        ended = true
        mdb_txn_abort(handle)
    }

    func get(_ db: String, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(handle, environment.database(db), &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBEnvironment.check(rc, "get", db)
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    func put(_ db: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBEnvironment.check(mdb_put(handle, environment.database(db), &k, &v, 0), "put", db)
    }

    func delete(_ db: String, _ key: UnsafeRawBufferPointer) throws -> Bool {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(handle, environment.database(db), &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try LMDBEnvironment.check(rc, "delete", db)
        return true
    }

    func scan(_ db: String, from start: [UInt8]?, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
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
