#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Starts an ingest. With a `reference` the session can be checkpointed and resumed
    /// (its lease lasts `leaseDuration` seconds, across processes); without one it is a
    /// one-shot put whose lease ends with this process. With `openLimit`, it fails with
    /// `limitExceeded` when that many resumable ingests whose references start with the
    /// same prefix are already open (counted in the transaction that adds this one, so
    /// concurrent callers cannot overshoot).
    public func beginIngest(reference: String? = nil, leaseDuration: UInt64 = 24 * 3600,
                            openLimit: (prefix: String, count: Int)? = nil) throws -> IngestSession {
        if let reference {
            guard !reference.isEmpty, reference.utf8.count <= 256 else {
                throw BlobStoreError(.invalidArgument, "ingest reference must be 1 to 256 bytes")
            }
        }
        let lease = try index.write { txn throws -> Lease in
            if let reference, try txn.get("ingests", Array(reference.utf8)) != nil {
                throw BlobStoreError(.alreadyExists, "an ingest named \(reference) is already in progress")
            }
            if let openLimit, try Store.countIngests(txn, prefix: openLimit.prefix, upTo: openLimit.count) >= openLimit.count {
                throw BlobStoreError(.limitExceeded, "\(openLimit.count) ingests named \(openLimit.prefix)… are already open")
            }
            let lease = try self.takeLease(txn, duration: leaseDuration, processBound: reference == nil,
                                            purpose: reference.map { "ingest \($0)" } ?? "put")
            if let reference {
                // An empty state from the start, so the reference is taken and resumable at once.
                try txn.put("ingests", Array(reference.utf8), IngestSession.emptyState(leaseID: lease.id))
            }
            return lease
        }
        return IngestSession(store: self, reference: reference, lease: lease)
    }

    /// How many resumable ingests whose reference starts with `prefix` are open, counted up
    /// to `limit` (the scan stops there: a cap check costs at most `limit` keys).
    static func countIngests(_ txn: borrowing IndexTransaction, prefix: String, upTo limit: Int) throws -> Int {
        let start = Array(prefix.utf8)
        var count = 0
        try txn.scan("ingests", from: start) { k, _ in
            guard k.starts(with: start), count < limit else { return false }
            count += 1
            return true
        }
        return count
    }

    /// Continues a checkpointed ingest where its last checkpoint left it.
    public func resumeIngest(reference: String) throws -> IngestSession {
        let (lease, state) = try index.read { txn throws -> (Lease, [UInt8]) in
            guard let state = try txn.get("ingests", Array(reference.utf8)) else {
                throw BlobStoreError(.notFound, "no ingest named \(reference) is in progress")
            }
            let leaseID = state.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self)) }
            guard let raw = try txn.get("leases", leaseID.bigEndianKey) else {
                throw BlobStoreError(.notFound, "ingest \(reference) has expired")
            }
            let lease = try Lease(id: leaseID, decoding: raw)
            return (lease, Array(state))
        }
        guard lease.isAlive(coordination) else { throw BlobStoreError(.notFound, "ingest \(reference) has expired") }
        return try state.withUnsafeBytes { (raw) in
            try IngestSession(store: self, reference: reference, lease: lease, state: raw)
        }
    }

    /// Bytes received so far by a resumable ingest (as of its last checkpoint).
    public func ingestOffset(reference: String) throws -> UInt64 {
        try index.read { txn in
            guard let state = try txn.get("ingests", Array(reference.utf8)), state.count >= 17 else {
                throw BlobStoreError(.notFound, "no ingest named \(reference) is in progress")
            }
            return state.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 9, as: UInt64.self)) }
        }
    }

    /// Abandons a resumable ingest by reference.
    public func abortIngest(reference: String) throws {
        try resumeIngest(reference: reference).abort()
    }

    /// Stores everything readable from `fd` as one blob.
    public func put(contentsOf fd: Int32, expected: Digest? = nil, mediaType: String? = nil, progress: ((UInt64) -> Void)? = nil) throws -> IngestResult {
        let session = try beginIngest()
        session.progress = progress
        do {
            try session.append(contentsOf: fd)
            return try session.commit(expected: expected, mediaType: mediaType)
        } catch {
            try? session.abort()
            throw error
        }
    }

    /// Stores a buffer as one blob.
    public func put(_ bytes: UnsafeRawBufferPointer, expected: Digest? = nil, mediaType: String? = nil) throws -> IngestResult {
        let session = try beginIngest()
        do {
            try session.append(bytes)
            return try session.commit(expected: expected, mediaType: mediaType)
        } catch {
            try? session.abort()
            throw error
        }
    }

    public func put(_ bytes: [UInt8], expected: Digest? = nil, mediaType: String? = nil) throws -> IngestResult {
        try bytes.withUnsafeBytes { (raw) in try put(raw, expected: expected, mediaType: mediaType) }
    }
}

extension IngestSession {
    static func emptyState(leaseID: UInt64) -> [UInt8] {
        var w = BinaryWriter()
        w.u8(1)
        w.u64(leaseID)
        w.u64(0)
        let h = SHA256Hasher().state
        w.u32(UInt32(h.count))
        w.raw(h)
        w.u32(0)
        w.u32(0)
        w.u32(0)
        return w.bytes
    }
}

extension Store {
    /// Stores the tree at `path` as one deterministic tar (`TarWriter.archiveDirectory`,
    /// `overlayUpper` as there), unpinned: the caller holds it (a volume snapshot, a claim)
    /// under a lease it took first. A failure leaves nothing stored.
    public func ingestDirectory(_ path: String, overlayUpper: Bool = false, mediaType: String = "application/x-tar") throws -> IngestResult {
        let session = try beginIngest()
        do {
            try TarWriter.archiveDirectory(path, overlayUpper: overlayUpper) { try session.append($0) }
            return try session.commit(mediaType: mediaType, pin: false)
        } catch {
            try? session.abort()
            throw error
        }
    }
}
