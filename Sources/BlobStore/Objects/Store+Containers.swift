import Foundation

extension Store {
    public func containers() throws -> [ContainerInfo] {
        try index.read { txn in
            var result: [ContainerInfo] = []
            try txn.scan("containers") { k, v in
                result.append(try ContainerInfo(name: String(decoding: k, as: UTF8.self), decoding: v))
                return true
            }
            return result
        }
    }

    public func container(_ name: String) throws -> ContainerInfo {
        try index.read { txn in
            guard let raw = try txn.get("containers", Array(name.utf8)) else { throw BlobStoreError(.notFound, "container \(name) not found") }
            return try ContainerInfo(name: name, decoding: raw)
        }
    }

    /// Creates a container on an image: it holds its own reference on the image's manifest,
    /// so removing the image's tag leaves the container's layers in place.
    public func createContainer(_ name: String, image: ImageReference, mounts: [MountSpec]) throws -> ContainerInfo {
        try ObjectName.validate(name, kind: "container")
        return try index.write { txn in
            let key = Array(name.utf8)
            if try txn.get("containers", key) != nil { throw BlobStoreError(.alreadyExists, "container \(name) already exists") }
            let info = try Store.image(txn, image)
            try Store.retain(txn, info.manifest)
            let now = UInt64(Date().timeIntervalSince1970)
            var recorded: [ContainerInfo.Mount] = []
            for spec in mounts {
                // A bind mount or a tmpfs is recorded only: no data of it is stored.
                guard spec.kind == .volume else {
                    recorded.append(.init(volume: "", path: spec.path, anonymous: false, kind: spec.kind, source: spec.source, readOnly: spec.readOnly))
                    continue
                }
                let anonymous = spec.volume == nil
                let volumeName = spec.volume ?? ObjectName.random()
                var v = try Store.volume(txn, volumeName)
                    ?? VolumeInfo(name: volumeName, anonymous: anonymous, snapshot: nil, users: 0, createdAt: now)
                v.users += 1
                try Store.putVolume(txn, v)
                recorded.append(.init(volume: volumeName, path: spec.path, anonymous: anonymous, kind: .volume, source: nil, readOnly: spec.readOnly))
            }
            let container = ContainerInfo(name: name, image: image.description, manifest: info.manifest, diff: nil, mounts: recorded, createdAt: now)
            try txn.put("containers", key, container.encoded())
            return container
        }
    }

    /// Makes `diff` (an ingested tar blob) the container's read-write layer, replacing the
    /// previous one.
    public func setContainerDiff(_ name: String, _ diff: Digest) throws {
        try index.write { txn in
            let key = Array(name.utf8)
            guard let raw = try txn.get("containers", key) else { throw BlobStoreError(.notFound, "container \(name) not found") }
            var c = try ContainerInfo(name: name, decoding: raw)
            try Store.retain(txn, diff)
            if let old = c.diff { try Store.release(txn, old, origin: .container) }
            c.diff = diff
            try txn.put("containers", key, c.encoded())
        }
    }

    /// Removes a container, its diff and (unless `keepVolumes`) its anonymous volumes.
    /// Named volumes always stay.
    @discardableResult
    public func removeContainer(_ name: String, keepVolumes: Bool = false) throws -> [String] {
        try index.write { txn in
            let key = Array(name.utf8)
            guard let raw = try txn.get("containers", key) else { throw BlobStoreError(.notFound, "container \(name) not found") }
            let c = try ContainerInfo(name: name, decoding: raw)
            try txn.delete("containers", key)
            try Store.release(txn, c.manifest, origin: .container)
            if let d = c.diff { try Store.release(txn, d, origin: .container) }
            var removed: [String] = []
            for m in c.mounts where m.kind == .volume {
                guard var v = try Store.volume(txn, m.volume) else { continue }
                if v.users == 0 {
                    logger.warning("volume user count below zero; run `blobctl fsck --repair`", metadata: ["volume": "\(v.name)", "container": "\(name)"])
                }
                v.users -= min(1, v.users)
                if v.anonymous && !keepVolumes && v.users == 0 {
                    try Store.deleteVolume(txn, v)
                    removed.append(v.name)
                } else {
                    try Store.putVolume(txn, v)
                }
            }
            return removed
        }
    }
}
