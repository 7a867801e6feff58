/// Where the index lives: the seam between the store and its database.
///
/// The store sees its index as named databases of sorted binary keys and values, read and
/// written in transactions with LMDB's rules: a read transaction sees one snapshot; write
/// transactions are serialised (one writer at a time, across every process and node using
/// the index) and commit all or nothing. Two engines keep those rules: `LMDBEnvironment`
/// (the embedded default, one machine) and the PostgreSQL index of cluster mode (the
/// `ClusterStore` target). Nothing above this file knows which one is in use.
package protocol IndexEngine: AnyObject, Sendable {
    /// Sees every write to the databases it observes (the index journal); set once, right
    /// after opening, or never (an engine that is durable and replicated on its own).
    var observer: (any IndexWriteObserver)? { get set }
    /// Starts a transaction; the caller ends it with `commit` or `abort` on the handle.
    func begin(writing: Bool) throws -> any IndexTransactionHandle
    /// Frees what processes that died inside a transaction still hold; returns how many.
    func clearStaleReaders() -> Int
}

/// One engine's open transaction. Values handed out by `get` stay valid until the
/// transaction ends; those handed to a `scan` visitor at least until the visitor returns.
package protocol IndexTransactionHandle: AnyObject {
    func get(_ db: String, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer?
    func put(_ db: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws
    /// Returns false when the key was not there.
    func delete(_ db: String, _ key: UnsafeRawBufferPointer) throws -> Bool
    /// Visits entries in key order (bytewise), from the first key >= `start`; the visitor
    /// returns false to stop.
    func scan(_ db: String, from start: [UInt8]?, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws
    func commit() throws
    func abort()
}

extension IndexEngine {
    package func read<R>(_ body: (borrowing IndexTransaction) throws -> R) throws -> R {
        let handle = try begin(writing: false)
        defer { handle.abort() }
        return try body(IndexTransaction(handle: handle))
    }

    /// A write transaction: commits only when `body` returns normally. With `observed`
    /// false the observer does not see it (replaying the journal into a new index must not
    /// journal it again).
    package func write<R>(observed: Bool = true, _ body: (borrowing IndexTransaction) throws -> R) throws -> R {
        let handle = try begin(writing: true)
        let recorder = observed ? observer.map { WriteRecorder(observer: $0) } : nil
        let result: R
        do {
            result = try body(IndexTransaction(handle: handle, recorder: recorder))
            // Persisted before the commit: what the index holds, the journal holds too.
            if let recorder, !recorder.entries.isEmpty { try recorder.observer.persist(recorder.entries) }
        } catch {
            handle.abort()
            throw error
        }
        try handle.commit()
        return result
    }
}

/// One transaction, valid only inside the closure that received it. Values returned by
/// `get` live as long as the transaction: copy what must outlive it.
package struct IndexTransaction: ~Copyable {
    let handle: any IndexTransactionHandle
    let recorder: WriteRecorder?

    init(handle: any IndexTransactionHandle, recorder: WriteRecorder? = nil) {
        self.handle = handle
        self.recorder = recorder
    }

    /// Shows a write to the observer, with the value it replaces.
    private func observe(_ db: String, _ key: UnsafeRawBufferPointer, new: UnsafeRawBufferPointer?) throws {
        guard let recorder, recorder.observer.observes(db) else { return }
        let old = try handle.get(db, key)
        recorder.observer.record(db, key: key, old: old, new: new, into: &recorder.entries)
    }

    package func get(_ db: String, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        try handle.get(db, key)
    }

    package func get(_ db: String, _ key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        try key.withUnsafeBytes { (k) throws -> UnsafeRawBufferPointer? in try handle.get(db, k) }
    }

    package func put(_ db: String, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        try observe(db, key, new: value)
        try handle.put(db, key, value)
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
        return try handle.delete(db, key)
    }

    @discardableResult
    package func delete(_ db: String, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { (k) throws -> Bool in try delete(db, k) }
    }

    /// Visits entries in key order, starting at the first key >= `start` (or the first key);
    /// the visitor returns false to stop.
    package func scan(_ db: String, from start: [UInt8]? = nil, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try handle.scan(db, from: start, visit)
    }
}

/// Watches writes to some databases and makes a record of them durable before each commit.
package protocol IndexWriteObserver: AnyObject, Sendable {
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
    let observer: any IndexWriteObserver
    var entries: [UInt8] = []
    init(observer: any IndexWriteObserver) { self.observer = observer }
}
