/// What one image, container or volume costs: the bytes removing it would free (exclusive)
/// and the bytes it shares with others, exact at chunk granularity.
public struct ObjectUsage: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case image, container, volume }
    public var kind: Kind
    public var name: String
    /// Sum of the sizes of the blobs it uses.
    public var logicalBytes: UInt64
    /// Pack bytes that removing it (and only it) would free.
    public var exclusiveBytes: UInt64
    /// Pack bytes of its chunks that something else uses too.
    public var sharedBytes: UInt64
}

extension Store {
    /// Usage of every image, container and volume.
    ///
    /// For each object the removal is simulated on an in-memory overlay of the counts: its
    /// edges are dropped, blobs reaching zero release their children and chunks, and chunks
    /// reaching zero are what it holds exclusively. The cost is the size of each object's
    /// own closure, never a scan of the store.
    public func objectUsage() throws -> [ObjectUsage] {
        try index.read { txn in
            var result: [ObjectUsage] = []
            try txn.scan("images") { k, v in
                let info = try Store.imageInfo(key: k, value: v)
                result.append(try Store.usage(txn, .image, info.reference, roots: [info.manifest]))
                return true
            }
            var anonymousOwned: [String: [Digest]] = [:]
            var volumes: [VolumeInfo] = []
            try txn.scan("volumes") { k, v in
                let volume = try VolumeInfo(name: String(decoding: k, as: UTF8.self), decoding: v)
                volumes.append(volume)
                return true
            }
            try txn.scan("containers") { k, v in
                let c = try ContainerInfo(name: String(decoding: k, as: UTF8.self), decoding: v)
                var roots = [c.manifest] + (c.diff.map { [$0] } ?? [])
                // Removing a container removes its anonymous volumes too.
                for m in c.mounts where m.anonymous {
                    roots += volumes.first(where: { $0.name == m.volume })?.versions ?? []
                }
                anonymousOwned[c.name] = roots
                result.append(try Store.usage(txn, .container, c.name, roots: roots))
                return true
            }
            for volume in volumes {
                result.append(try Store.usage(txn, .volume, volume.name, roots: volume.versions))
            }
            return result
        }
    }

    static func usage(_ txn: borrowing IndexTransaction, _ kind: ObjectUsage.Kind, _ name: String, roots: [Digest]) throws -> ObjectUsage {
        var walk = UsageWalk(usage: ObjectUsage(kind: kind, name: name, logicalBytes: 0, exclusiveBytes: 0, sharedBytes: 0))
        var pending = roots // one dropped reference each
        while let digest = pending.popLast() {
            guard let blob = try blob(txn, digest) else { continue }
            let refs = (walk.blobRefs[digest] ?? blob.references) - 1
            walk.blobRefs[digest] = refs
            let firstVisit = try walk.visit(txn, digest, blob)
            guard refs == 0, !blob.pinned else {
                // Still held elsewhere: what it reaches is shared, but counts in the totals.
                if firstVisit {
                    for child in try edges(txn, of: digest) ?? [] { try walk.walkShared(txn, child) }
                }
                continue
            }
            // Freed: its children lose a reference and its chunks a use.
            if let children = try edges(txn, of: digest) { pending.append(contentsOf: children) }
            for key in blob.chunks {
                guard let r = walk.chunkRefs[key], r > 0 else { continue }
                walk.chunkRefs[key] = r - 1
                if r - 1 == 0 { walk.usage.exclusiveBytes += walk.chunkSizes[key] ?? 0 }
            }
        }
        walk.usage.sharedBytes = walk.chunkSizes.values.reduce(0, +) - walk.usage.exclusiveBytes
        return walk.usage
    }
}

/// The in-memory overlay of counts one usage simulation works on.
private struct UsageWalk {
    var usage: ObjectUsage
    var blobRefs: [Digest: UInt64] = [:]
    var chunkRefs: [Digest: UInt64] = [:]
    var chunkSizes: [Digest: UInt64] = [:]
    var seen = Set<Digest>()

    /// Counts a blob's size and loads its chunks' records, once; true on the first visit.
    mutating func visit(_ txn: borrowing IndexTransaction, _ digest: Digest, _ blob: BlobRecord) throws -> Bool {
        guard seen.insert(digest).inserted else { return false }
        usage.logicalBytes += blob.size
        for key in Set(blob.chunks) where chunkSizes[key] == nil {
            guard let raw = try txn.get("chunks", key.key) else { continue }
            let chunk = try ChunkRecord(decoding: raw)
            chunkSizes[key] = chunk.location.recordSize
            chunkRefs[key] = chunk.references
        }
        return true
    }

    /// A blob that stays alive, and what it reaches: shared bytes of the object.
    mutating func walkShared(_ txn: borrowing IndexTransaction, _ digest: Digest) throws {
        guard !seen.contains(digest), let blob = try Store.blob(txn, digest) else { return }
        _ = try visit(txn, digest, blob)
        for child in try Store.edges(txn, of: digest) ?? [] { try walkShared(txn, child) }
    }
}
