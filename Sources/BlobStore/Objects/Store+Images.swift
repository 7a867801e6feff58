import Foundation

/// A tagged image: `name:tag` pointing at a manifest or index.
public struct ImageInfo: Sendable, Equatable, Codable {
    public var name: String
    public var tag: String
    public var manifest: Digest
    public var mediaType: String?
    public var createdAt: UInt64
    public var reference: String { "\(name):\(tag)" }
}

extension Store {
    /// Every tagged image, sorted by reference.
    public func images() throws -> [ImageInfo] {
        try index.read { txn in
            var result: [ImageInfo] = []
            try txn.scan("images") { k, v in
                result.append(try Store.imageInfo(key: k, value: v))
                return true
            }
            return result
        }
    }

    package static func imageInfo(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws -> ImageInfo {
        let ref = String(decoding: key, as: UTF8.self)
        guard let colon = ref.lastIndex(of: ":") else { throw BlobStoreError(.corrupt, "image key \(ref) has no tag") }
        var r = BinaryReader(value, what: "image \(ref)")
        let digest = try r.digest()
        let created = try r.u64()
        let type = try r.string()
        return ImageInfo(name: String(ref[..<colon]), tag: String(ref[ref.index(after: colon)...]), manifest: digest,
                         mediaType: type.isEmpty ? nil : type, createdAt: created)
    }

    /// The image a reference names; `name@digest` must name a manifest in the store.
    public func image(_ reference: ImageReference) throws -> ImageInfo {
        try index.read { txn in try Store.image(txn, reference) }
    }

    static func image(_ txn: borrowing IndexTransaction, _ reference: ImageReference) throws -> ImageInfo {
        if let digest = reference.digest {
            guard let blob = try blob(txn, digest) else { throw BlobStoreError(.notFound, "image \(reference) not found") }
            return ImageInfo(name: reference.name, tag: "", manifest: digest, mediaType: blob.mediaType, createdAt: blob.createdAt)
        }
        let key = Array("\(reference.name):\(reference.tag ?? "latest")".utf8)
        guard let raw = try txn.get("images", key) else { throw BlobStoreError(.notFound, "image \(reference) not found") }
        return try key.withUnsafeBytes { try imageInfo(key: $0, value: raw) }
    }

    /// Points `name:tag` at a manifest (already expanded) inside `txn`, moving the tag's
    /// reference from the manifest it named before.
    package static func setTag(_ txn: borrowing IndexTransaction, _ reference: ImageReference, manifest: Digest, mediaType: String?) throws {
        guard let tag = reference.tag else { throw BlobStoreError(.invalidArgument, "a tag is needed, not a digest: \(reference)") }
        let key = Array("\(reference.name):\(tag)".utf8)
        try retain(txn, manifest)
        if let old = try txn.get("images", key) {
            var r = BinaryReader(old, what: "image")
            try release(txn, try r.digest(), origin: .image)
        }
        var w = BinaryWriter()
        w.digest(manifest)
        w.u64(UInt64(Date().timeIntervalSince1970))
        w.string(mediaType ?? "")
        try txn.put("images", key, w.bytes)
    }

    /// `image tag SOURCE TARGET`: a new tag for the manifest SOURCE names.
    public func tagImage(_ source: ImageReference, as target: ImageReference) throws {
        try index.write { txn in
            let info = try Store.image(txn, source)
            try Store.setTag(txn, target, manifest: info.manifest, mediaType: info.mediaType)
        }
    }

    /// `image rm`: removes a tag. What the image used becomes garbage unless something
    /// else (another tag, a container) still refers to it.
    public func removeImage(_ reference: ImageReference) throws {
        try index.write { txn in
            let key = Array("\(reference.name):\(reference.tag ?? "latest")".utf8)
            guard let raw = try txn.get("images", key) else { throw BlobStoreError(.notFound, "image \(reference) not found") }
            var r = BinaryReader(raw, what: "image")
            let digest = try r.digest()
            try txn.delete("images", key)
            try Store.release(txn, digest, origin: .image)
        }
    }

    /// A manifest's parsed content, read from the store.
    public func manifest(_ digest: Digest) throws -> Manifest {
        let info = try stat(digest)
        guard info.size <= 4 << 20 else { throw BlobStoreError(.invalidArgument, "blob \(digest) is too large to be a manifest") }
        return try Manifest(parsing: readAll(digest), declaredType: info.mediaType)
    }

    /// The image manifest whose layers make up an image's file system: `digest` itself, or
    /// for an index its linux/amd64 entry (else its first).
    public func platformManifest(_ digest: Digest) throws -> Manifest {
        let m = try manifest(digest)
        guard m.isIndex else { return m }
        let pick = m.manifests.first { $0.platform?.os == "linux" && $0.platform?.architecture == "amd64" } ?? m.manifests.first
        guard let pick else { throw BlobStoreError(.notFound, "image index \(digest) lists no manifests") }
        return try manifest(pick.digest)
    }

    /// The image's blobs, as its manifests list them: the manifest (or index), then for each
    /// manifest its config and layers, depth first, each once. What the store keeps beside
    /// them for its own use (a compressed layer's decompressed tar) is not the image's.
    public func imageBlobs(of manifest: Digest) throws -> [Digest] {
        var seen = Set<Digest>()
        var order: [Digest] = []
        var stack = [(digest: manifest, isManifest: true)]
        while let (d, isManifest) = stack.popLast() {
            guard seen.insert(d).inserted else { continue }
            order.append(d)
            guard isManifest else { continue }
            let m = try self.manifest(d)
            let children = (m.config.map { [($0.digest, false)] } ?? []) + m.layers.map { ($0.digest, false) } + m.manifests.map { ($0.digest, true) }
            stack.append(contentsOf: children.reversed())
        }
        return order
    }
}
