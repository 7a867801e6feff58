import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Pack files in a local directory, `packs/<16 hex digits>.pack`.
///
/// Each process appends to a pack of its own, held with an exclusive `flock`, so concurrent
/// writers never interleave records. A new process first tries to adopt a pack that is
/// below half the size limit and unlocked (its writer has exited), so many short `put`s do
/// not leave a trail of tiny packs. Pack ids are random 64-bit numbers: no coordination is
/// needed to name one, and an id is never reused.
public final class LocalPackBackend: PackBackend, @unchecked Sendable {
    public let directory: String
    public let sizeLimit: UInt64
    private let lock = NSLock()
    private let syncLock = NSLock()
    private var current: (id: UInt64, handle: FileHandle, size: UInt64)?
    /// Packs this process keeps locked: the current one, and earlier ones that writers
    /// still in progress appended to. A handle closes (and its lock drops) when neither.
    private var locked: [UInt64: (handle: FileHandle, writers: Set<PackWriter>)] = [:]
    private var unsynced: [FileHandle] = []
    private let readers = NSLock()
    private var readHandles: [UInt64: FileHandle] = [:]
    /// Past this many cached read handles, those of removed packs are dropped on the next open.
    private static let readHandleSweep = 256

    /// Whether a new writer may adopt a half-empty pack it finds unlocked. Off for a
    /// staging folder whose sealed packs are on their way to object storage.
    let adoptsPacks: Bool

    public init(directory: String, sizeLimit: UInt64, adoptsPacks: Bool = true) {
        self.directory = directory
        self.sizeLimit = sizeLimit
        self.adoptsPacks = adoptsPacks
    }

    public func path(for id: UInt64) -> String { directory + "/" + PackFormat.fileName(for: id) }

    public func beginWriting() -> PackWriter {
        PackWriter(id: UInt64.random(in: 1...UInt64.max))
    }

    public func endWriting(_ writer: PackWriter) {
        lock.lock()
        defer { lock.unlock() }
        for (id, entry) in locked where entry.writers.contains(writer) {
            var e = entry
            e.writers.remove(writer)
            locked[id] = e
            if e.writers.isEmpty && current?.id != id { release(id) }
        }
    }

    public func append(_ records: [PendingRecord], for writer: PackWriter) throws -> [ChunkLocation] {
        lock.lock()
        defer { lock.unlock() }
        var locations: [ChunkLocation] = []
        locations.reserveCapacity(records.count)
        var index = 0
        while index < records.count {
            var pack = try currentPack()
            // Gather as many records as fit before the size limit into one write.
            var batchEnd = index
            var batchBytes = 0
            while batchEnd < records.count {
                // A frame is one unit: all of its records fit, or it goes to the next pack.
                var unitEnd = batchEnd + 1
                if records[batchEnd].flags.contains(.framed) {
                    while unitEnd < records.count, records[unitEnd].flags.contains(.framed), records[unitEnd].frameBack > 0 { unitEnd += 1 }
                }
                let size = records[batchEnd..<unitEnd].reduce(0) { $0 + PackFormat.recordHeaderSize + $1.payload.count }
                if pack.size + UInt64(batchBytes + size) > sizeLimit && (pack.size > UInt64(PackFormat.headerSize) || batchBytes > 0) { break }
                batchBytes += size
                batchEnd = unitEnd
            }
            if batchEnd == index {
                try rotate()
                continue
            }
            let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: batchBytes, alignment: 16)
            defer { staging.deallocate() }
            var cursor = 0
            let first = locations.count
            for i in index..<batchEnd {
                let r = records[i]
                PackFormat.writeRecordHeader(into: staging.baseAddress! + cursor, key: r.key, flags: r.flags, rawSize: r.rawSize, storedSize: UInt32(r.payload.count),
                                             checksum: r.checksum, frameBack: r.frameBack)
                if r.payload.count > 0 {
                    (staging.baseAddress! + cursor + PackFormat.recordHeaderSize).copyMemory(from: r.payload.baseAddress!, byteCount: r.payload.count)
                }
                locations.append(ChunkLocation(packID: pack.id, offset: pack.size + UInt64(cursor), storedSize: UInt32(r.payload.count), rawSize: r.rawSize, flags: r.flags, checksum: r.checksum, frameBack: r.frameBack))
                cursor += PackFormat.recordHeaderSize + r.payload.count
            }
            locked[pack.id]?.writers.insert(writer)
            do {
                try pack.handle.write(UnsafeRawBufferPointer(staging), at: pack.size)
            } catch {
                locations.removeSubrange(first...)
                abandonTornTail(of: pack)
                throw error
            }
            // Written back while ingest goes on, so `sync` before the commit waits on the
            // last few megabytes rather than on the whole blob (0.10 s of a 1.5 s put).
            pack.handle.startWriteback(at: pack.size, count: batchBytes)
            pack.size += UInt64(batchBytes)
            current = pack
            if !unsynced.contains(where: { $0 === pack.handle }) { unsynced.append(pack.handle) }
            index = batchEnd
        }
        return locations
    }

    /// After a failed write (a full disk) the bytes past the pack's known end are unknown:
    /// cut them off where possible (a scan resyncs past a torn stretch otherwise) and move
    /// on to another pack for the next append, leaving this one to GC once its writers
    /// end — it mostly holds the failed ingest's dead bytes. The store stays writable once
    /// space is back, with no restart. Lock held.
    private func abandonTornTail(of pack: (id: UInt64, handle: FileHandle, size: UInt64)) {
        _ = try? pack.handle.truncate(to: pack.size)
        current = nil
        if locked[pack.id]?.writers.isEmpty ?? true { release(pack.id) }
    }

    public func sync() throws {
        // Held across the fsyncs: a second caller must not return before the first caller's
        // fsync, which may cover its records too, has finished.
        syncLock.lock()
        defer { syncLock.unlock() }
        lock.lock()
        let pending = unsynced
        unsynced.removeAll()
        lock.unlock()
        for (i, handle) in pending.enumerated() {
            do {
                try handle.sync()
            } catch {
                lock.lock()
                unsynced.append(contentsOf: pending[i...])
                lock.unlock()
                throw error
            }
        }
    }

    public func seal() throws {
        lock.lock()
        defer { lock.unlock() }
        try rotate()
    }

    public func read(pack id: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readHandle(id).read(into: buffer, at: offset)
    }

    public func sweep() {
        readers.lock()
        sweepReadHandles()
        readers.unlock()
        removeAbandonedCreations()
    }

    /// Drops cached handles of unlinked packs. `readers` held.
    private func sweepReadHandles() {
        for (id, handle) in readHandles where ((try? handle.linkCount()) ?? 0) == 0 {
            readHandles[id] = nil
        }
    }

    public func packs() throws -> [(id: UInt64, size: UInt64)] {
        guard let names = FileHandle.directoryEntries(directory) else { throw BlobStoreError.io("list packs in", path: directory) }
        var result: [(UInt64, UInt64)] = []
        for name in names {
            guard let id = PackFormat.id(fromFileName: name) else { continue }
            var st = stat()
            guard stat(directory + "/" + name, &st) == 0 else { continue }
            result.append((id, UInt64(st.st_size)))
        }
        return result.sorted { $0.0 < $1.0 }
    }

    public func claim(pack id: UInt64) throws -> PackClaim? {
        lock.lock()
        let ours = locked[id] != nil
        lock.unlock()
        if ours { return nil }
        guard let handle = try? FileHandle(path: path(for: id), flags: O_RDWR), handle.tryLockExclusive() else { return nil }
        guard ((try? handle.linkCount()) ?? 0) > 0, let size = try? handle.size() else { return nil }
        return PackClaim(id: id, size: size, holder: handle)
    }

    public func remove(pack id: UInt64) throws {
        readers.lock()
        readHandles[id] = nil
        readers.unlock()
        if unlink(path(for: id)) != 0 && errno != ENOENT {
            throw BlobStoreError.io("remove pack", path: path(for: id))
        }
        try FileHandle.syncDirectory(directory)
    }

    public func importPack(id: UInt64, size: UInt64, from source: (UInt64, UnsafeMutableRawBufferPointer) throws -> Int) throws {
        let final = path(for: id)
        // Written under the temporary name of a pack creation, locked: a sweep elsewhere
        // removes it only once this process is gone.
        let temporary = directory + "/." + PackFormat.fileName(for: id) + ".new"
        let handle = try FileHandle(path: temporary, flags: O_RDWR | O_CREAT | O_EXCL)
        guard handle.tryLockExclusive() else { throw BlobStoreError.io("lock", path: temporary, errno: EWOULDBLOCK) }
        do {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
            defer { buffer.deallocate() }
            var offset: UInt64 = 0
            while offset < size {
                let want = Int(min(UInt64(buffer.count), size - offset))
                let n = try source(offset, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
                try handle.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: offset)
                offset += UInt64(n)
            }
            try handle.sync()
            if link(temporary, final) != 0 { throw BlobStoreError.io("create pack", path: final) }
        } catch {
            unlink(temporary)
            throw error
        }
        unlink(temporary)
        try FileHandle.syncDirectory(directory)
    }

    // MARK: - Private

    private func readHandle(_ id: UInt64) throws -> FileHandle {
        readers.lock()
        defer { readers.unlock() }
        if let handle = readHandles[id] { return handle }
        if readHandles.count >= LocalPackBackend.readHandleSweep { sweepReadHandles() }
        let handle: FileHandle
        do {
            handle = try FileHandle(path: path(for: id), flags: O_RDONLY)
        } catch {
            throw BlobStoreError(.corrupt, "pack \(PackFormat.fileName(for: id)) is missing: \(error)")
        }
        readHandles[id] = handle
        return handle
    }

    /// The pack this process appends to, adopting or creating one on first use. Lock held.
    private func currentPack() throws -> (id: UInt64, handle: FileHandle, size: UInt64) {
        if let current { return current }
        let pack = try (adoptsPacks ? adoptPack() : nil) ?? createPack()
        current = pack
        locked[pack.id] = (pack.handle, [])
        return pack
    }

    /// Closes a locked pack's handle, dropping its lock. Lock held.
    private func release(_ id: UInt64) {
        locked[id] = nil
    }

    private func adoptPack() throws -> (id: UInt64, handle: FileHandle, size: UInt64)? {
        for (id, size) in try packs() where size < sizeLimit / 2 {
            guard let handle = try? FileHandle(path: path(for: id), flags: O_RDWR) else { continue }
            guard handle.tryLockExclusive() else { continue }
            // Re-read the size under the lock: the previous writer may have appended since.
            let locked = try handle.size()
            // GC may have unlinked it between our open and our lock.
            guard try handle.linkCount() > 0 else { continue }
            guard locked >= UInt64(PackFormat.headerSize), locked < sizeLimit / 2 else { continue }
            var header = [UInt8](repeating: 0, count: PackFormat.headerSize)
            let n = try header.withUnsafeMutableBytes { (raw) in try handle.read(into: raw, at: 0) }
            guard n == PackFormat.headerSize,
                  header.withUnsafeBytes({ PackFormat.parsePackHeader($0) }) == id else { continue }
            return (id, handle, locked)
        }
        return nil
    }

    /// A new pack, created under a temporary name, locked and given its header before it
    /// appears under its own name: nobody can claim or adopt it in between.
    private func createPack() throws -> (id: UInt64, handle: FileHandle, size: UInt64) {
        while true {
            let id = UInt64.random(in: 1...UInt64.max)
            let final = path(for: id)
            let temporary = directory + "/." + PackFormat.fileName(for: id) + ".new"
            let handle: FileHandle
            do {
                handle = try FileHandle(path: temporary, flags: O_RDWR | O_CREAT | O_EXCL)
            } catch let error as BlobStoreError where error.errno == EEXIST {
                continue
            }
            guard handle.tryLockExclusive() else {
                unlink(temporary)
                continue
            }
            do {
                let header = PackFormat.packHeader(id: id, createdAt: UInt64(time(nil)))
                try header.withUnsafeBytes { (raw) in try handle.write(raw, at: 0) }
                try handle.sync()
            } catch {
                unlink(temporary)
                throw error
            }
            // link() refuses an existing name, where rename() would replace someone's pack.
            if link(temporary, final) != 0 {
                let e = errno
                unlink(temporary)
                if e == EEXIST || e == ENOENT { continue }
                throw BlobStoreError.io("create pack", path: final, errno: e)
            }
            unlink(temporary)
            try FileHandle.syncDirectory(directory)
            return (id, handle, UInt64(PackFormat.headerSize))
        }
    }

    /// Removes temporary files of pack creations whose process died before finishing.
    private func removeAbandonedCreations() {
        let names = (FileHandle.directoryEntries(directory) ?? []).filter { $0.hasPrefix(".") && $0.hasSuffix(".pack.new") }
        for name in names {
            guard let handle = try? FileHandle(path: directory + "/" + name, flags: O_RDWR), handle.tryLockExclusive() else { continue }
            unlink(directory + "/" + name)
        }
    }

    /// Seals the current pack: durable, unlocked (by closing it), and no longer appended to.
    private func rotate() throws {
        guard let pack = current else { return }
        try pack.handle.sync()
        unsynced.removeAll { $0 === pack.handle }
        current = nil
        if locked[pack.id]?.writers.isEmpty ?? true { release(pack.id) }
    }
}
