#if canImport(Glibc)
import Glibc
#endif

/// The index journal's life in a store (see `IndexJournal`): created with the store (or
/// written from the index on the first open of an older store), compacted by GC into a
/// snapshot once it has grown well past what it describes, replayed by a rebuild.
extension Store {
    static func journalPath(root: String) -> String { root + "/index.journal" }
    static let snapshotSizeKey = Array("journalSnapshotBytes".utf8)

    /// Starts journaling this store's index writes. An index without a journal (a store
    /// made before the journal existed) is written to one first.
    func startJournal() throws {
        if index.observer == nil { index.observer = IndexJournal(path: Store.journalPath(root: root)) }
        if access(Store.journalPath(root: root), F_OK) != 0 { try snapshotJournal() }
    }

    /// Nil for an index that needs none (PostgreSQL in cluster mode is durable and
    /// replicated by itself, and rebuilt from its own backups).
    private var journal: IndexJournal? { index.observer as? IndexJournal }

    /// Replaces the journal with a snapshot of the index and notes its size.
    package func snapshotJournal() throws {
        guard let journal else { return }
        try index.write(observed: false) { txn in
            let size = try journal.writeSnapshot(txn)
            try txn.put("meta", Store.snapshotSizeKey, withUnsafeBytes(of: size.littleEndian) { Array($0) })
        }
    }

    /// Snapshots the journal when it has grown past 64 MiB and four times its last snapshot.
    /// Never for an index that did not write a snapshot itself: an index recreated empty
    /// over a lost one must not replace the journal that can rebuild it.
    package func compactJournalIfNeeded() throws -> Bool {
        guard journal != nil else { return false }
        guard let file = try? FileHandle(path: Store.journalPath(root: root), flags: O_RDONLY) else { return false }
        let size = try file.size()
        guard size > 64 << 20 else { return false }
        let last = try index.read { txn -> UInt64? in
            guard let raw = try txn.get("meta", Store.snapshotSizeKey), raw.count == 8 else { return nil }
            return UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
        }
        guard let last, size > 4 * max(last, 1) else { return false }
        try snapshotJournal()
        return true
    }

    /// Applies the journal at `path` to this (empty) index without journaling it again;
    /// returns the entries applied and the damaged stretches skipped.
    package func replayJournal(from path: String) throws -> (entries: Int, skipped: Int) {
        try index.write(observed: false) { txn in
            var applied = 0
            let skipped = try IndexJournal.read(path: path) { entry in
                applied += 1
                switch entry.op {
                case .put:
                    try txn.put(entry.database, entry.key, entry.value)
                case .delete:
                    try txn.delete(entry.database, entry.key)
                case .pin:
                    guard let raw = try txn.get(entry.database, entry.key), raw.count > 1, let pinned = entry.value.first else { return }
                    var record = Array(raw)
                    record[1] = pinned
                    try txn.put(entry.database, entry.key, record)
                }
            }
            return (applied, skipped)
        }
    }
}
