import Dispatch
import Foundation

/// Streams one blob into the store.
///
/// Bytes arrive through `append` in pieces of any size and go into a segment buffer. When a
/// segment is full the caller's thread cuts it into chunks (content-defined), hands them to
/// jobs on all cores (see `IngestSegment`: hash, look up, compress the new ones) and the cut
/// bytes to a serial queue that updates the blob's own SHA-256, then goes on filling the
/// other segment buffer — two segments at most are in memory, whatever the blob's size. A
/// serial stage appends each segment's new chunks to this process's pack once its jobs are
/// done, in blob order.
///
/// `commit` makes the pack bytes durable and then, in one index transaction, adds the new
/// chunks, counts the reused ones and writes the blob record (DESIGN invariant 2). Until
/// then nothing is visible, and a lease keeps the chunks this ingest dedups against from
/// being collected. A session with a `reference` can `checkpoint` and be resumed later,
/// by another process too.
public final class IngestSession: @unchecked Sendable {
    public let store: Store
    /// The caller-chosen name of a resumable session, nil for a one-shot put.
    public let reference: String?
    public private(set) var lease: Lease
    /// This session's unit of writing: the packs it appended to stay locked until it ends.
    private let writer: PackWriter
    /// Bytes accepted so far.
    public private(set) var size: UInt64 = 0
    /// Called on the appending thread with the byte count so far.
    public var progress: ((UInt64) -> Void)?

    /// The blob digest over every byte cut into chunks so far (updated on `digesting`; read
    /// by others only after `drain`).
    private var hasher = SHA256Hasher()
    private let digesting = DispatchQueue(label: "blobstore.ingest.digest")
    private let segmentCapacity: Int
    private var segments: [UnsafeMutableRawBufferPointer]
    private var active = 0
    private var filled = 0
    private var finished = false

    // Owned by the background stage while it runs; read by others only after `drain`.
    private var recipe: [Digest] = []
    private var recipeEnds: [UInt64] = []
    private var written: [Digest: ChunkLocation] = [:]
    private var failure: BlobStoreError?
    private let failureLock = NSLock()
    /// The background stage's error, if it failed (read from the appending thread).
    private var stageError: BlobStoreError? {
        get { failureLock.lock(); defer { failureLock.unlock() }; return failure }
        set { failureLock.lock(); failure = newValue; failureLock.unlock() }
    }
    /// Appends segments in order, each once its jobs are done.
    private let stage = DispatchQueue(label: "blobstore.ingest")
    /// Every segment not appended yet.
    private let stageGroup = DispatchGroup()
    /// Per segment buffer: its segment is not appended yet, so the buffer is in use.
    private let inFlight = [DispatchGroup(), DispatchGroup()]
    /// Per segment buffer: room for its chunks' compressed bytes, kept for the session
    /// (allocating megabytes per segment from several threads inflates glibc's heaps).
    private var arenas: [UnsafeMutableRawBufferPointer?] = [nil, nil]
    /// Keys this session has claimed (see `ChunkClaims`); a resumed one starts with those
    /// it wrote.
    private var claims = ChunkClaims([])

    init(store: Store, reference: String?, lease: Lease) {
        self.store = store
        self.reference = reference
        self.lease = lease
        writer = store.packs.beginWriting()
        segmentCapacity = max(8 << 20, 4 * store.config.chunking.maxSize)
        segments = (0..<2).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: max(8 << 20, 4 * store.config.chunking.maxSize), alignment: 64) }
    }

    deinit {
        stageGroup.wait()
        store.packs.endWriting(writer)
        for s in segments { s.deallocate() }
        for a in arenas { a?.deallocate() }
    }

    /// Buffer `index`'s arena, at least `size` bytes; only while the buffer is not in flight.
    private func compressionArena(_ index: Int, atLeast size: Int) -> UnsafeMutableRawBufferPointer {
        if let arena = arenas[index], arena.count >= size { return arena }
        arenas[index]?.deallocate()
        let fresh = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, ZstdCompressor.bound(segmentCapacity)), alignment: 64)
        arenas[index] = fresh
        return fresh
    }

    // MARK: - Appending

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "append after commit or abort")
        try throwStageError()
        var rest = bytes
        while !rest.isEmpty {
            let room = segmentCapacity - filled
            let n = min(room, rest.count)
            let segment = segments[active]
            (segment.baseAddress! + filled).copyMemory(from: rest.baseAddress!, byteCount: n)
            filled += n
            size += UInt64(n)
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if filled == segmentCapacity { try flushSegment(isFinal: false) }
        }
        progress?(size)
    }

    public func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (raw) in try append(raw) }
    }

    /// Reads `fd` to its end, appending everything. Reads land straight in the segment
    /// buffer: no intermediate copy.
    public func append(contentsOf fd: Int32) throws {
        precondition(!finished, "append after commit or abort")
        try throwStageError()
        while true {
            let room = segmentCapacity - filled
            let n = read(fd, segments[active].baseAddress! + filled, min(room, 4 << 20))
            if n < 0 {
                if errno == EINTR { continue }
                throw BlobStoreError.io("read input")
            }
            if n == 0 { return }
            filled += n
            size += UInt64(n)
            if filled == segmentCapacity { try flushSegment(isFinal: false) }
            progress?(size)
        }
    }

    /// Cuts the active segment, hands its chunks to the jobs and the stage, and carries the
    /// uncut tail over to the other segment buffer.
    private func flushSegment(isFinal: Bool) throws {
        let segment = segments[active]
        var ends: [Int] = [] // chunk end offsets within the segment
        var start = 0
        while start < filled {
            let window = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(segment)[start..<filled])
            guard let length = store.chunker.nextChunkLength(in: window, isFinal: isFinal) else { break }
            start += length
            ends.append(start)
        }
        if !ends.isEmpty { submit(buffer: active, ends: ends) }
        // The other buffer is reused once its segment is appended; until then this
        // segment's jobs already run beside that segment's last ones.
        let next = 1 - active
        inFlight[next].wait()
        try throwStageError()
        let tail = filled - start
        if tail > 0 {
            segments[next].baseAddress!.copyMemory(from: segment.baseAddress! + start, byteCount: tail)
        }
        active = next
        filled = tail
    }

    /// Starts the jobs of the segment in `buffer`, and queues its append behind them.
    private func submit(buffer: Int, ends: [Int]) {
        let work = IngestSegment(base: UnsafeRawPointer(segments[buffer].baseAddress!), ends: ends) {
            compressionArena(buffer, atLeast: $0).baseAddress!
        }
        inFlight[buffer].enter()
        stageGroup.enter()
        // Segments are submitted in order and `digesting` is serial, so the blob digest sees
        // the bytes in order; it runs beside the jobs rather than on the cutting thread.
        let cut = SendableBuffer(buffer: UnsafeRawBufferPointer(start: segments[buffer].baseAddress!, count: ends[ends.count - 1]))
        digesting.async(group: work.jobs) { [self] in hasher.update(cut.buffer) }
        for job in work.jobRanges {
            work.jobs.enter()
            IngestSegment.workers.submit { [self] in
                do {
                    try work.process(job, store: store, claims: claims)
                } catch {
                    stageError = error as? BlobStoreError ?? BlobStoreError(.io, "\(error)")
                }
                work.jobs.leave()
            }
        }
        stage.async { [self] in
            work.jobs.wait()
            if stageError == nil {
                do {
                    try append(work)
                } catch {
                    stageError = error as? BlobStoreError ?? BlobStoreError(.io, "\(error)")
                }
            }
            inFlight[buffer].leave()
            stageGroup.leave()
        }
    }

    private func throwStageError() throws {
        if let stageError { throw stageError }
    }

    /// Waits for the background stage.
    private func drain() throws {
        stageGroup.wait()
        try throwStageError()
    }

    // MARK: - The background stage

    /// Appends a segment's new chunks, in blob order, to this process's pack and adds its
    /// chunks to the recipe.
    private func append(_ work: IngestSegment) throws {
        var records: [PendingRecord] = []
        for case let record? in work.records { records.append(record) }
        if !records.isEmpty {
            let locations = try store.packs.append(records, for: writer)
            for (record, location) in zip(records, locations) {
                written[record.key] = location
            }
        }
        let offset = recipeEnds.last ?? 0
        for (key, end) in zip(work.keys, work.ends) {
            recipe.append(key)
            recipeEnds.append(offset + UInt64(end))
        }
    }

    // MARK: - Finishing

    /// Finishes the blob: checks it against `expected` (digest and size, when given), makes
    /// its new chunks durable and records it in the index. A mismatch throws and stores
    /// nothing. A blob that was already present is not written again.
    ///
    /// With `holdFor` the blob is held that many seconds (see `Store.hold`): a registry
    /// upload keeps its blob alive that way until the manifest that uses it arrives.
    public func commit(expected: Digest? = nil, expectedSize: UInt64? = nil, mediaType: String? = nil, pin: Bool = true,
                       holdFor: UInt64? = nil) throws -> IngestResult {
        precondition(!finished, "commit after commit or abort")
        finished = true
        do {
            try flushSegment(isFinal: true)
            try drain()
        } catch {
            stageGroup.wait()
            try? discard()
            throw error
        }
        let digest = hasher.finalize()
        if let expectedSize, expectedSize != size {
            try? discard()
            throw BlobStoreError(.digestMismatch, "size mismatch: expected \(expectedSize) bytes, got \(size)")
        }
        if let expected, expected != digest {
            try? discard()
            throw BlobStoreError(.digestMismatch, "digest mismatch: expected \(expected), got \(digest)")
        }
        // Point of no return: pack bytes become durable, then the index points at them.
        let result: IngestResult
        do {
            try store.packs.sync()
            result = try store.index.write { txn throws -> IngestResult in
                let result = try record(txn, digest: digest, mediaType: mediaType, pin: pin)
                if let holdFor { try Store.hold(txn, digest, seconds: holdFor) }
                return result
            }
        } catch {
            // Nothing was recorded: end the lease and account the bytes as dead, so a failed
            // commit (a full disk, a full index, an ended lease) leaks nothing.
            try? discard()
            throw error
        }
        store.packs.endWriting(writer)
        store.logger.debug("ingested blob", metadata: ["digest": "\(digest)", "size": "\(size)", "new-chunks": "\(result.newChunks)"])
        return result
    }

    /// The commit transaction's work.
    private func record(_ txn: borrowing IndexTransaction, digest: Digest, mediaType: String?, pin: Bool) throws -> IngestResult {
        var totals = try Store.totals(txn)
        var packStats: [UInt64: PackStats] = [:]
        func stats(_ id: UInt64) throws -> PackStats {
            if let s = packStats[id] { return s }
            return try Store.packStats(txn, id)
        }
        // GC deletes a lease it found dead in the transaction that then collects what the
        // lease protected: if ours is gone, chunks we dedup against or packs we wrote to may
        // be gone too, so nothing may be indexed.
        guard try txn.get("leases", lease.id.bigEndianKey) != nil else {
            throw BlobStoreError(.notFound, "the lease of this ingest ended before its commit (it expired or its process was judged dead); nothing was stored, retry the upload")
        }
        try Store.releaseLease(txn, lease.id)
        if let reference { try txn.delete("ingests", Array(reference.utf8)) }

        let blobKey = digest.key
        if let existing = try txn.get("blobs", blobKey) {
            // Someone stored this blob first: everything this session wrote is surplus.
            var blob = try BlobRecord(decoding: existing, recipe: false)
            for location in written.values {
                var s = try stats(location.packID)
                s.deadBytes += location.recordSize
                packStats[location.packID] = s
            }
            if pin && !blob.pinned {
                let full = try BlobRecord(decoding: existing)
                blob = full
                blob.pinned = true
                try txn.put("blobs", blobKey, blob.encoded())
                try GarbageQueue.remove(txn, .blob, digest)
            } else if !blob.isReferenced {
                // Queued as garbage long ago: stamp it anew, so leases the caller holds (an
                // import that references it next) protect it as they would a new blob.
                try GarbageQueue.push(txn, .blob, digest, origin: .upload)
            }
            for (id, s) in packStats { try Store.setPackStats(txn, id, s) }
            return IngestResult(digest: digest, size: size, chunkCount: recipe.count, newChunks: 0, storedBytes: 0, alreadyPresent: true)
        }

        var newChunks = 0
        var storedBytes: UInt64 = 0
        var used = Set<Digest>()
        for key in recipe {
            let k = key.key
            if let raw = try txn.get("chunks", k) {
                var chunk = try ChunkRecord(decoding: raw)
                if chunk.references == 0 { try GarbageQueue.remove(txn, .chunk, key) }
                chunk.references += 1
                try txn.put("chunks", k, chunk.encoded())
            } else if let location = written[key] {
                try txn.put("chunks", k, ChunkRecord(location: location, references: 1).encoded())
                used.insert(key)
                var s = try stats(location.packID)
                s.liveBytes += location.recordSize
                s.liveChunks += 1
                packStats[location.packID] = s
                newChunks += 1
                storedBytes += location.recordSize
                totals.chunks += 1
                totals.uniqueBytes += UInt64(location.rawSize)
                totals.storedBytes += location.recordSize
            } else {
                // Only possible if the lease protocol was broken (e.g. a clock jump expired it).
                throw BlobStoreError(.corrupt, "chunk \(key) of blob \(digest) vanished from the index during ingest; retry the upload")
            }
        }
        for (key, location) in written where !used.contains(key) {
            var s = try stats(location.packID)
            s.deadBytes += location.recordSize
            packStats[location.packID] = s
        }
        let blob = BlobRecord(size: size, mediaType: mediaType, pinned: pin, references: 0,
                              createdAt: UInt64(Date().timeIntervalSince1970), chunks: recipe, chunkEnds: recipeEnds)
        try txn.put("blobs", blobKey, blob.encoded())
        if !pin { try GarbageQueue.push(txn, .blob, digest, origin: .upload) }
        totals.blobs += 1
        totals.logicalBytes += size
        try Store.setTotals(txn, totals)
        for (id, s) in packStats { try Store.setPackStats(txn, id, s) }
        return IngestResult(digest: digest, size: size, chunkCount: recipe.count, newChunks: newChunks, storedBytes: storedBytes, alreadyPresent: false)
    }

    /// Abandons the ingest: nothing becomes visible, its pack bytes are accounted dead, its
    /// lease and resumable state are dropped.
    public func abort() throws {
        guard !finished else { return }
        finished = true
        stageGroup.wait()
        try discard()
    }

    private func discard() throws {
        defer { store.packs.endWriting(writer) }
        try store.index.write { txn in
            try Store.releaseLease(txn, lease.id)
            if let reference { try txn.delete("ingests", Array(reference.utf8)) }
            var packStats: [UInt64: PackStats] = [:]
            for location in written.values {
                var s = try packStats[location.packID] ?? Store.packStats(txn, location.packID)
                s.deadBytes += location.recordSize
                packStats[location.packID] = s
            }
            for (id, s) in packStats { try Store.setPackStats(txn, id, s) }
        }
    }

    // MARK: - Resuming

    /// Makes everything appended so far durable and records the session's state under its
    /// reference, so `Store.resumeIngest` can continue it — in this process or another.
    public func checkpoint() throws {
        guard let reference else {
            throw BlobStoreError(.invalidArgument, "only a session with a reference can be checkpointed")
        }
        try flushSegment(isFinal: false)
        try drain()
        try store.packs.sync()
        let state = encodeState()
        // The lease lists the packs holding this session's records, which protects them once
        // this process no longer holds their locks, and is extended: activity keeps an
        // upload alive however long it takes.
        var renewed = lease
        renewed.packs = Array(Set(written.values.map(\.packID))).sorted()
        let duration = lease.expiresAt > lease.createdAt ? lease.expiresAt - lease.createdAt : 0
        renewed.expiresAt = max(lease.expiresAt, UInt64(time(nil)) + duration)
        try store.index.write { txn in
            guard try txn.get("leases", lease.id.bigEndianKey) != nil else {
                throw BlobStoreError(.notFound, "ingest \(reference) has expired")
            }
            try txn.put("leases", lease.id.bigEndianKey, renewed.encoded())
            try txn.put("ingests", Array(reference.utf8), state)
        }
        lease = renewed
    }

    private func encodeState() -> [UInt8] {
        var w = BinaryWriter(capacity: 256 + recipe.count * 40 + written.count * 64 + filled)
        w.u8(1)
        w.u64(lease.id)
        w.u64(size)
        let h = hasher.state
        w.u32(UInt32(h.count))
        w.raw(h)
        w.u32(UInt32(recipe.count))
        for (key, end) in zip(recipe, recipeEnds) {
            w.digest(key)
            w.u64(end)
        }
        w.u32(UInt32(written.count))
        for (key, l) in written {
            w.digest(key)
            l.write(to: &w)
        }
        w.u32(UInt32(filled))
        w.raw(Array(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(segments[active])[..<filled])))
        return w.bytes
    }

    /// Restores a checkpointed session.
    init(store: Store, reference: String, lease: Lease, state raw: UnsafeRawBufferPointer) throws {
        self.store = store
        self.reference = reference
        self.lease = lease
        writer = store.packs.beginWriting()
        segmentCapacity = max(8 << 20, 4 * store.config.chunking.maxSize)
        segments = (0..<2).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: max(8 << 20, 4 * store.config.chunking.maxSize), alignment: 64) }
        var r = BinaryReader(raw, what: "ingest \(reference)")
        guard try r.u8() == 1 else { throw BlobStoreError(.unsupportedFormat, "ingest state of \(reference) has an unknown version") }
        _ = try r.u64()
        size = try r.u64()
        let hstate = try r.raw(Int(try r.u32()))
        guard let h = SHA256Hasher(state: hstate) else { throw BlobStoreError(.corrupt, "ingest state of \(reference) has a bad digest state") }
        hasher = h
        for _ in 0..<Int(try r.u32()) {
            recipe.append(try r.digest())
            recipeEnds.append(try r.u64())
        }
        for _ in 0..<Int(try r.u32()) {
            let key = try r.digest()
            written[key] = try ChunkLocation(reading: &r)
        }
        claims = ChunkClaims(written.keys)
        let tail = try r.raw(Int(try r.u32()))
        guard tail.count <= segmentCapacity else { throw BlobStoreError(.corrupt, "ingest state of \(reference) has an oversized tail") }
        if !tail.isEmpty {
            tail.withUnsafeBytes { segments[0].baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        filled = tail.count
    }
}
