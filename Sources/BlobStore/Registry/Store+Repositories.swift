import Foundation

/// What a repository of the registry holds, kept in the index beside images:
/// - `repoblobs`: name ␀ digest — blobs pushed or mounted into the repository (a link: it
///   holds no count; what keeps a blob is a manifest, a tag, or its upload's lease). The
///   value is empty, or `hidden` after a blob DELETE of a blob an imported image uses: the
///   repository no longer serves it, though the image keeps it stored;
/// - `repomanifests`: name ␀ digest — manifests pushed to the repository, each holding a
///   counted reference, so a manifest stays fetchable by digest after its tag moves;
/// - `referrers`: subject ␀ name ␀ referrer — the descriptor of a manifest whose `subject`
///   is another manifest, for the referrers API.
/// Tags are the images' own `name:tag` records, so a pushed image is an image to `blobctl`.
extension Store {
    static func repoKey(_ name: String, _ digest: Digest) -> [UInt8] {
        Array(name.utf8) + [0] + digest.bytes
    }

    /// The `repoblobs` value of a blob deleted from a repository whose imported images use it.
    static let hidden: [UInt8] = [1]

    public func linkBlob(_ name: String, _ digest: Digest) throws {
        try index.write { txn in try txn.put("repoblobs", Store.repoKey(name, digest), []) }
    }

    /// The blob, when the repository has it (linked, or used by one of its manifests).
    public func repositoryBlob(_ name: String, _ digest: Digest) throws -> BlobInfo? {
        try index.read { txn in
            let link = try txn.get("repoblobs", Store.repoKey(name, digest))
            if let link, link.elementsEqual(Store.hidden) { return nil }
            guard try link != nil
                    || txn.get("repomanifests", Store.repoKey(name, digest)) != nil
                    || Store.importedImagesUse(txn, name, digest) else { return nil }
            guard let blob = try Store.blob(txn, digest) else { return nil }
            return BlobInfo(digest: digest, size: blob.size, mediaType: blob.mediaType, chunkCount: blob.chunkCount,
                            pinned: blob.pinned, references: blob.references, createdAt: blob.createdAt)
        }
    }

    /// Whether `digest` belongs to an image tagged under `name` that was not pushed through
    /// the registry (`blobctl image import`, `image tag`): such images have no repository
    /// links, yet are the repository's to serve. Pushed manifests are skipped — their blobs
    /// were linked at push time, so a blob DELETE keeps its meaning for them.
    static func importedImagesUse(_ txn: borrowing IndexTransaction, _ name: String, _ digest: Digest) throws -> Bool {
        let prefix = Array("\(name):".utf8)
        var stack: [Digest] = []
        try txn.scan("images", from: prefix) { k, v in
            guard k.starts(with: prefix) else { return false }
            var r = BinaryReader(v, what: "image")
            stack.append(try r.digest())
            return true
        }
        stack = try stack.filter { try txn.get("repomanifests", Store.repoKey(name, $0)) == nil }
        var seen = Set<Digest>()
        while let d = stack.popLast() {
            if d == digest { return true }
            guard seen.insert(d).inserted else { continue }
            if let children = try Store.edges(txn, of: d) { stack.append(contentsOf: children) }
        }
        return false
    }

    /// Removes a blob from a repository; false when it was not there. A blob the repository
    /// serves because an imported image uses it is hidden from it instead (the image, the
    /// CLI's view, still has it), so the registry and the CLI agree on one set of images.
    public func unlinkBlob(_ name: String, _ digest: Digest) throws -> Bool {
        try index.write { txn in
            let key = Store.repoKey(name, digest)
            if let link = try txn.get("repoblobs", key) {
                if link.elementsEqual(Store.hidden) { return false }
                return try txn.delete("repoblobs", key)
            }
            guard try Store.importedImagesUse(txn, name, digest) else { return false }
            try txn.put("repoblobs", key, Store.hidden)
            return true
        }
    }

    /// Whether any tag, manifest or blob lives under `name`.
    public func repositoryExists(_ name: String) throws -> Bool {
        try index.read { txn in
            var found = false
            for db in ["repomanifests", "repoblobs"] where !found {
                try txn.scan(db, from: Array(name.utf8) + [0]) { k, _ in
                    found = k.count > name.utf8.count && k[name.utf8.count] == 0 && k.starts(with: name.utf8)
                    return false
                }
            }
            return found
        }
    }

    /// A pushed manifest: stores its bytes, counts its references to the blobs it lists
    /// (which must all be in the store), records it under the repository and, with a tag,
    /// points the tag at it; a `subject` makes it a referrer. One transaction for all but
    /// the bytes, which an unpinned ingest held by `lease` stores first.
    public func putManifest(_ name: String, tag: String?, bytes: [UInt8], mediaType: String?) throws -> (Digest, Manifest) {
        let manifest = try Manifest(parsing: bytes, declaredType: mediaType)
        let type = mediaType ?? manifest.mediaType
        return try withLease("push manifest \(name)") { _ in
            let digest = try ingest(bytes: bytes, mediaType: type).digest
            try index.write { txn in
                for child in manifest.children {
                    guard let blob = try Store.blob(txn, child.digest) else {
                        throw BlobStoreError(.notFound, "manifest refers to blob \(child.digest), which is not in the registry")
                    }
                    guard blob.size == child.size else {
                        throw BlobStoreError(.invalidArgument, "descriptor of \(child.digest) says \(child.size) bytes, the blob has \(blob.size)")
                    }
                }
                try Store.expand(txn, manifest: digest, children: manifest.children.map(\.digest))
                // The manifest counts its blobs now: their upload holds are done, so deleting
                // the image frees them at the next collection, not an hour after the push.
                for child in manifest.children { try txn.delete("holds", child.digest.key) }
                let key = Store.repoKey(name, digest)
                if try txn.get("repomanifests", key) == nil {
                    try Store.retain(txn, digest)
                    try txn.put("repomanifests", key, withUnsafeBytes(of: UInt64(Date().timeIntervalSince1970).littleEndian) { Array($0) })
                }
                for child in manifest.children { try txn.put("repoblobs", Store.repoKey(name, child.digest), []) }
                if let tag { try Store.setTag(txn, ImageReference(name: name, tag: tag), manifest: digest, mediaType: type) }
                if let subject = manifest.subject {
                    var d = Descriptor(mediaType: type, digest: digest, size: UInt64(bytes.count), annotations: manifest.annotations)
                    d.artifactType = manifest.artifactType ?? (manifest.config?.mediaType == "application/vnd.oci.empty.v1+json" ? nil : manifest.config?.mediaType)
                    let encoded = try JSONEncoder().encode(d)
                    try txn.put("referrers", subject.digest.bytes + Array(name.utf8) + [0] + digest.bytes, Array(encoded))
                }
            }
            return (digest, manifest)
        }
    }

    /// The manifest a tag or digest names in a repository.
    public func repositoryManifest(_ name: String, reference: String) throws -> (digest: Digest, mediaType: String?, size: UInt64)? {
        try index.read { txn in
            let digest: Digest
            if let d = Digest(parsing: reference), reference.hasPrefix("sha256:") {
                guard try txn.get("repomanifests", Store.repoKey(name, d)) != nil
                        || Store.importedImagesUse(txn, name, d) else { return nil }
                digest = d
            } else {
                guard let raw = try txn.get("images", Array("\(name):\(reference)".utf8)) else { return nil }
                var r = BinaryReader(raw, what: "image")
                digest = try r.digest()
            }
            guard let blob = try Store.blob(txn, digest) else { return nil }
            // An imported image's layers and config belong to the repository too, but only
            // its manifests and indexes are served as manifests (a layer would be read whole).
            if reference.hasPrefix("sha256:"), try txn.get("repomanifests", Store.repoKey(name, digest)) == nil {
                guard let type = blob.mediaType, MediaType.isManifest(type) || MediaType.isIndex(type) else { return nil }
            }
            return (digest, blob.mediaType, blob.size)
        }
    }

    /// Tags of a repository in lexical order.
    public func tags(_ name: String) throws -> [String] {
        try index.read { txn in
            var tags: [String] = []
            let prefix = Array("\(name):".utf8)
            try txn.scan("images", from: prefix) { k, _ in
                guard k.starts(with: prefix) else { return false }
                let tag = String(decoding: k[prefix.count...], as: UTF8.self)
                if ImageReference.isValidTag(tag) { tags.append(tag) }
                return true
            }
            return tags.sorted()
        }
    }

    /// Deletes a tag; false when there was none.
    public func deleteTag(_ name: String, _ tag: String) throws -> Bool {
        try index.write { txn in
            let key = Array("\(name):\(tag)".utf8)
            guard let raw = try txn.get("images", key) else { return false }
            var r = BinaryReader(raw, what: "image")
            let digest = try r.digest()
            try txn.delete("images", key)
            try Store.release(txn, digest, origin: .image)
            return true
        }
    }

    /// Deletes a manifest from a repository with every tag of the repository that points at
    /// it and its referrer record; false when the repository did not have it.
    public func deleteManifest(_ name: String, _ digest: Digest) throws -> Bool {
        let subject = try? manifest(digest).subject
        return try index.write { txn in
            let key = Store.repoKey(name, digest)
            guard try txn.get("repomanifests", key) != nil else { return false }
            try txn.delete("repomanifests", key)
            try Store.release(txn, digest, origin: .image)
            let prefix = Array("\(name):".utf8)
            var tagged: [[UInt8]] = []
            try txn.scan("images", from: prefix) { k, v in
                guard k.starts(with: prefix) else { return false }
                var r = BinaryReader(v, what: "image")
                if try r.digest() == digest { tagged.append(Array(k)) }
                return true
            }
            for k in tagged {
                try txn.delete("images", k)
                try Store.release(txn, digest, origin: .image)
            }
            if let subject {
                try txn.delete("referrers", subject.digest.bytes + Array(name.utf8) + [0] + digest.bytes)
            }
            return true
        }
    }

    /// Descriptors of the manifests in `name` whose subject is `subject`.
    public func referrers(_ name: String, subject: Digest) throws -> [Descriptor] {
        try index.read { txn in
            let prefix = subject.bytes + Array(name.utf8) + [0]
            var result: [Descriptor] = []
            try txn.scan("referrers", from: prefix) { k, v in
                guard k.starts(with: prefix) else { return false }
                if let d = try? JSONDecoder().decode(Descriptor.self, from: Data(v)) { result.append(d) }
                return true
            }
            return result
        }
    }
}
