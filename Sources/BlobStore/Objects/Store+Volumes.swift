import Foundation

extension Store {
    public func volumes() throws -> [VolumeInfo] {
        try index.read { txn in
            var result: [VolumeInfo] = []
            try txn.scan("volumes") { k, v in
                result.append(try VolumeInfo(name: String(decoding: k, as: UTF8.self), decoding: v))
                return true
            }
            return result
        }
    }

    public func volume(_ name: String) throws -> VolumeInfo {
        try index.read { txn in
            guard let v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            return v
        }
    }

    static func volume(_ txn: borrowing IndexTransaction, _ name: String) throws -> VolumeInfo? {
        guard let raw = try txn.get("volumes", Array(name.utf8)) else { return nil }
        return try VolumeInfo(name: name, decoding: raw)
    }

    static func putVolume(_ txn: borrowing IndexTransaction, _ v: VolumeInfo) throws {
        try txn.put("volumes", Array(v.name.utf8), v.encoded())
    }

    /// Creates an empty named volume (a random name when none is given).
    public func createVolume(_ name: String? = nil) throws -> VolumeInfo {
        let name = name ?? ObjectName.random()
        try ObjectName.validate(name, kind: "volume")
        return try index.write { txn in
            if try Store.volume(txn, name) != nil { throw BlobStoreError(.alreadyExists, "volume \(name) already exists") }
            let v = VolumeInfo(name: name, anonymous: false, snapshot: nil, users: 0, createdAt: UInt64(Date().timeIntervalSince1970))
            try Store.putVolume(txn, v)
            return v
        }
    }

    /// Makes `snapshot` (an ingested tar blob) the volume's content, creating the volume if
    /// needed. The previous snapshot stays as the volume's last earlier version (see
    /// `volumeVersions`), or with `keepHistory: false` loses its reference (for volumes whose
    /// history is kept elsewhere, e.g. as CSI snapshots); setting the current snapshot again
    /// changes nothing.
    public func setVolumeSnapshot(_ name: String, _ snapshot: Digest, keepHistory: Bool = true) throws {
        try ObjectName.validate(name, kind: "volume")
        try index.write { txn in
            var v = try Store.volume(txn, name)
                ?? VolumeInfo(name: name, anonymous: false, snapshot: nil, users: 0, createdAt: UInt64(Date().timeIntervalSince1970))
            if v.snapshot == snapshot { return }
            try Store.retain(txn, snapshot)
            if let old = v.snapshot {
                if keepHistory { v.history.append(old) } else { try Store.release(txn, old, origin: .volume) }
            }
            v.snapshot = snapshot
            try Store.putVolume(txn, v)
        }
    }

    /// One version of a volume: 1 is the oldest kept, the highest is the current content.
    public struct VolumeVersion: Sendable, Equatable, Codable {
        public var number: Int
        public var digest: Digest
        public var size: UInt64
        /// When the snapshot's blob was stored (seconds since 1970).
        public var createdAt: UInt64
        public var current: Bool
    }

    public func volumeVersions(_ name: String) throws -> [VolumeVersion] {
        try index.read { txn in
            guard let v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            let all = v.versions
            return try all.enumerated().map { i, digest in
                guard let blob = try Store.blob(txn, digest) else { throw BlobStoreError(.corrupt, "version \(i + 1) of volume \(name) (\(digest)) is not in the store") }
                return VolumeVersion(number: i + 1, digest: digest, size: blob.size, createdAt: blob.createdAt, current: i == all.count - 1)
            }
        }
    }

    /// The snapshot of version `number` (see `volumeVersions`).
    public func volumeVersion(_ name: String, _ number: Int) throws -> Digest {
        try Store.version(try volume(name), number)
    }

    static func version(_ v: VolumeInfo, _ number: Int) throws -> Digest {
        let all = v.versions
        guard number >= 1 && number <= all.count else {
            throw BlobStoreError(.notFound, all.isEmpty ? "volume \(v.name) has no version yet"
                                                        : "volume \(v.name) has versions 1 to \(all.count), not \(number)")
        }
        return all[number - 1]
    }

    /// Makes version `number`'s content the volume's current content, as a new version (so
    /// the one it replaces stays in the history). Returns the new version's number.
    @discardableResult
    public func restoreVolume(_ name: String, version number: Int) throws -> Int {
        try index.write { txn in
            guard var v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            // A mounted volume's next version is whatever its mount holds when it ends.
            guard v.holds.isEmpty else {
                throw BlobStoreError(.invalidArgument, "volume \(name) is mounted by \(v.holds.joined(separator: ", ")); restore it once unmounted")
            }
            let digest = try Store.version(v, number)
            if v.snapshot != digest {
                try Store.retain(txn, digest)
                if let old = v.snapshot { v.history.append(old) }
                v.snapshot = digest
                try Store.putVolume(txn, v)
            }
            return v.versions.count
        }
    }

    /// Drops all but the newest `keep` earlier versions (the current one always stays); their
    /// exclusive bytes go at the next `gc`. Returns how many were dropped. Versions are
    /// renumbered from 1.
    @discardableResult
    public func forgetVolumeVersions(_ name: String, keep: Int) throws -> Int {
        guard keep >= 0 else { throw BlobStoreError(.invalidArgument, "--keep must be 0 or more") }
        return try index.write { txn in
            guard var v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            let drop = max(0, v.history.count - keep)
            for d in v.history.prefix(drop) { try Store.release(txn, d, origin: .volume) }
            v.history.removeFirst(drop)
            try Store.putVolume(txn, v)
            return drop
        }
    }

    /// Removes a volume no container uses.
    public func removeVolume(_ name: String) throws {
        try index.write { txn in
            guard let v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            guard v.users == 0 else {
                throw BlobStoreError(.invalidArgument, "volume \(name) is in use by \(v.users) container(s)")
            }
            guard v.holds.isEmpty else {
                throw BlobStoreError(.invalidArgument, "volume \(name) is mounted by \(v.holds.joined(separator: ", "))")
            }
            try Store.deleteVolume(txn, v)
        }
    }

    static func deleteVolume(_ txn: borrowing IndexTransaction, _ v: VolumeInfo) throws {
        try txn.delete("volumes", Array(v.name.utf8))
        for s in v.versions { try release(txn, s, origin: .volume) }
    }

    /// Removes every volume no container uses; returns their names.
    public func pruneVolumes() throws -> [String] {
        try index.write { txn in
            var unused: [VolumeInfo] = []
            try txn.scan("volumes") { k, v in
                let volume = try VolumeInfo(name: String(decoding: k, as: UTF8.self), decoding: v)
                if volume.users == 0 && volume.holds.isEmpty { unused.append(volume) }
                return true
            }
            for v in unused { try Store.deleteVolume(txn, v) }
            return unused.map(\.name)
        }
    }

    /// Marks the volume as mounted by `holder` (idempotent); see `VolumeInfo.holds`.
    public func holdVolume(_ name: String, by holder: String) throws {
        try index.write { txn in
            guard var v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            if v.holds.contains(holder) { return }
            v.holds.append(holder)
            try Store.putVolume(txn, v)
        }
    }

    /// Ends `holder`'s hold (idempotent; a volume already gone is fine).
    public func releaseVolume(_ name: String, by holder: String) throws {
        try index.write { txn in
            guard var v = try Store.volume(txn, name), v.holds.contains(holder) else { return }
            v.holds.removeAll { $0 == holder }
            try Store.putVolume(txn, v)
        }
    }
}
