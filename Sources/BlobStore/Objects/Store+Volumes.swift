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

    static func volume(_ txn: borrowing LMDBTransaction, _ name: String) throws -> VolumeInfo? {
        guard let raw = try txn.get("volumes", Array(name.utf8)) else { return nil }
        return try VolumeInfo(name: name, decoding: raw)
    }

    static func putVolume(_ txn: borrowing LMDBTransaction, _ v: VolumeInfo) throws {
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
    /// needed; the previous snapshot loses its reference.
    public func setVolumeSnapshot(_ name: String, _ snapshot: Digest) throws {
        try ObjectName.validate(name, kind: "volume")
        try index.write { txn in
            var v = try Store.volume(txn, name)
                ?? VolumeInfo(name: name, anonymous: false, snapshot: nil, users: 0, createdAt: UInt64(Date().timeIntervalSince1970))
            try Store.retain(txn, snapshot)
            if let old = v.snapshot { try Store.release(txn, old) }
            v.snapshot = snapshot
            try Store.putVolume(txn, v)
        }
    }

    /// Removes a volume no container uses.
    public func removeVolume(_ name: String) throws {
        try index.write { txn in
            guard let v = try Store.volume(txn, name) else { throw BlobStoreError(.notFound, "volume \(name) not found") }
            guard v.users == 0 else {
                throw BlobStoreError(.invalidArgument, "volume \(name) is in use by \(v.users) container(s)")
            }
            try Store.deleteVolume(txn, v)
        }
    }

    static func deleteVolume(_ txn: borrowing LMDBTransaction, _ v: VolumeInfo) throws {
        try txn.delete("volumes", Array(v.name.utf8))
        if let s = v.snapshot { try release(txn, s) }
    }

    /// Removes every volume no container uses; returns their names.
    public func pruneVolumes() throws -> [String] {
        try index.write { txn in
            var unused: [VolumeInfo] = []
            try txn.scan("volumes") { k, v in
                let volume = try VolumeInfo(name: String(decoding: k, as: UTF8.self), decoding: v)
                if volume.users == 0 { unused.append(volume) }
                return true
            }
            for v in unused { try Store.deleteVolume(txn, v) }
            return unused.map(\.name)
        }
    }
}
