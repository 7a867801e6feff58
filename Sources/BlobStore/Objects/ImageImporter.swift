import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An image `image import` stored.
public struct ImportedImage: Sendable, Equatable, Codable {
    public var reference: String
    public var manifest: Digest
    public var mediaType: String
    /// Blobs the image uses (manifests, configs, layers).
    public var blobs: Int
}

/// Imports images from an OCI image layout directory, or from a tar: `docker save` output
/// in its legacy form (`manifest.json`, `<id>/layer.tar`) or its OCI form (`index.json`,
/// `blobs/sha256/…`), or an OCI layout archive. Layers go in as they are (gzip, zstd or
/// plain tar), by digest, verified against the digest and size their descriptor names.
///
/// All of it runs under a lease, so nothing ingested is collected before the final index
/// transaction counts every manifest's references and sets the tags. Any error — bad JSON,
/// a missing blob, a digest mismatch, a hostile or truncated tar — stops the import, and the
/// blobs it had added that nothing else refers to are dropped again: it stores nothing.
public struct ImageImporter {
    public let store: Store
    /// Repository name for images whose layout names only a tag (or nothing).
    public var defaultName: String
    /// Largest manifest or JSON file accepted.
    public static let maxMetadataSize = 4 << 20

    public init(store: Store, defaultName: String) {
        self.store = store
        self.defaultName = defaultName
    }

    public func importImages(from path: String) throws -> [ImportedImage] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw BlobStoreError.io("import", path: path) }
        var added: [Digest] = []
        do {
            return try store.withLease("image import \(path)") { _ in
                var source: Source
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    source = DirectorySource(root: try ConfinedDirectory(path, role: "layout root"))
                } else {
                    source = try ArchiveSource.read(path, into: store, added: &added)
                }
                return try importFrom(&source, added: &added)
            }
        } catch {
            try? discard(added)
            throw error
        }
    }

    // MARK: - Sources

    /// Where an import finds its metadata files and blobs.
    protocol Source {
        func metadata(_ name: String) throws -> [UInt8]?
        /// Makes sure blob `digest` is in the store (ingesting it from the source if needed).
        mutating func ensureBlob(_ d: Descriptor, store: Store, added: inout [Digest]) throws
        /// Legacy `docker save`: a member's digest by path.
        func legacyBlob(_ path: String) -> (digest: Digest, size: UInt64)?
    }

    /// A layout directory. Every path — fixed names, blobs by digest, and whatever a
    /// docker-save `manifest.json` names — is opened inside the layout root (see
    /// `ConfinedDirectory`): one that climbs out with `..`, is absolute, or goes through a
    /// symlink leading outside is an error, so an import never reads a file the layout does
    /// not hold. (A digest's hex is validated when it is parsed, so `blobs/sha256/<hex>`
    /// cannot name anything else.)
    struct DirectorySource: Source {
        let root: ConfinedDirectory

        func metadata(_ name: String) throws -> [UInt8]? {
            guard let file = try openRegularFile(name) else { return nil }
            return try readSmallFile(file)
        }

        mutating func ensureBlob(_ d: Descriptor, store: Store, added: inout [Digest]) throws {
            let relative = "blobs/sha256/" + d.digest.hex
            guard let file = try openRegularFile(relative) else {
                throw BlobStoreError(.notFound, "blob \(d.digest) is missing from the layout (no \(root.path)/\(relative))")
            }
            let r = try store.ingest(handle: file, expected: d.digest, expectedSize: d.size, mediaType: d.mediaType)
            if !r.alreadyPresent { added.append(r.digest) }
        }

        /// nil when absent; an error when it is not a regular file (a FIFO would block the
        /// import, a device would stream forever).
        private func openRegularFile(_ relative: String) throws -> FileHandle? {
            guard let file = try root.openIfPresent(relative, flags: O_RDONLY | O_NONBLOCK) else { return nil }
            var st = stat()
            guard fstat(file.fd, &st) == 0 else { throw BlobStoreError.io("fstat", path: file.path) }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw BlobStoreError(.invalidArgument, "\(file.path) is not a regular file")
            }
            return file
        }

        func legacyBlob(_ path: String) -> (digest: Digest, size: UInt64)? { nil }
    }

    /// A tar read once from start to end: blobs are ingested as their members go by, small
    /// JSON files are kept for after.
    struct ArchiveSource: Source {
        var files: [String: [UInt8]] = [:]
        var blobs: [Digest: UInt64] = [:]
        var legacy: [String: (digest: Digest, size: UInt64)] = [:]
        var links: [String: String] = [:]

        static func read(_ path: String, into store: Store, added: inout [Digest]) throws -> ArchiveSource {
            let file = try FileHandle(path: path, flags: O_RDONLY)
            var magic = [UInt8](repeating: 0, count: 4)
            _ = try magic.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
            if magic.starts(with: [0x1F, 0x8B]) || magic.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) {
                throw BlobStoreError(.invalidArgument, "\(path) is compressed; decompress it first (e.g. gunzip or zstd -d)")
            }
            var source = ArchiveSource()
            var reader = TarReader(fileDescriptor: file.fd)
            try withExtendedLifetime(file) {
                while let entry = try reader.next() {
                    var name = entry.path
                    while name.hasPrefix("./") { name.removeFirst(2) }
                    switch entry.kind {
                    case .regular:
                        if let digest = blobName(name) {
                            let r = try ingest(&reader, store: store, expected: digest, size: entry.size)
                            if !r.alreadyPresent { added.append(r.digest) }
                            source.blobs[digest] = entry.size
                        } else if name.hasSuffix(".json") || name == "oci-layout" || name == "repositories" {
                            guard entry.size <= UInt64(ImageImporter.maxMetadataSize) else {
                                throw BlobStoreError(.invalidArgument, "\(name) in the archive is too large (\(entry.size) bytes)")
                            }
                            var bytes: [UInt8] = []
                            try reader.readContent { bytes.append(contentsOf: $0) }
                            source.files[name] = bytes
                        } else if name.hasSuffix("/layer.tar") || name.hasSuffix(".tar") {
                            let r = try ingest(&reader, store: store, expected: nil, size: entry.size)
                            if !r.alreadyPresent { added.append(r.digest) }
                            source.legacy[name] = (r.digest, entry.size)
                        }
                    case .symlink:
                        // Legacy `docker save` links a repeated layer to its first copy
                        // (`<id>/layer.tar -> ../<first id>/layer.tar`).
                        source.links[name] = try memberName(linkedBy: name, target: entry.linkTarget, relativeToLink: true)
                    case .hardLink:
                        source.links[name] = try memberName(linkedBy: name, target: entry.linkTarget, relativeToLink: false)
                    default:
                        break
                    }
                }
            }
            return source
        }

        /// The member a link points at, resolved by name (nothing here touches the file
        /// system): a symlink's target from the link's folder, a hard link's from the root.
        /// A target that is absolute or climbs above the root is an error.
        static func memberName(linkedBy link: String, target: String, relativeToLink: Bool) throws -> String {
            func escape(_ why: String) -> BlobStoreError {
                BlobStoreError(.invalidArgument, "link \(String(reflecting: link)) -> \(String(reflecting: target)) escapes the archive root: \(why)")
            }
            if target.hasPrefix("/") { throw escape("the target is an absolute path") }
            var parts = relativeToLink ? link.split(separator: "/").dropLast().map(String.init) : []
            for component in target.split(separator: "/") where component != "." {
                if component == ".." {
                    guard parts.popLast() != nil else { throw escape("it climbs above it with \"..\"") }
                } else {
                    parts.append(String(component))
                }
            }
            return parts.joined(separator: "/")
        }

        static func blobName(_ name: String) -> Digest? {
            guard name.hasPrefix("blobs/sha256/") else { return nil }
            return Digest(hex: name.dropFirst("blobs/sha256/".count))
        }

        static func ingest(_ reader: inout TarReader, store: Store, expected: Digest?, size: UInt64) throws -> IngestResult {
            let session = try store.beginIngest()
            do {
                try reader.readContent { try session.append($0) }
                return try session.commit(expected: expected, expectedSize: size, pin: false)
            } catch {
                try? session.abort()
                throw error
            }
        }

        func metadata(_ name: String) throws -> [UInt8]? { files[name] }

        mutating func ensureBlob(_ d: Descriptor, store: Store, added: inout [Digest]) throws {
            if let size = blobs[d.digest] {
                guard size == d.size else {
                    throw BlobStoreError(.digestMismatch, "blob \(d.digest) is \(size) bytes, its descriptor says \(d.size)")
                }
                return
            }
            // Not in the archive: acceptable only if the store has it already.
            guard let info = try? store.stat(d.digest) else {
                throw BlobStoreError(.notFound, "blob \(d.digest) (\(d.mediaType)) is missing from the archive")
            }
            guard info.size == d.size else {
                throw BlobStoreError(.digestMismatch, "blob \(d.digest) is \(info.size) bytes, its descriptor says \(d.size)")
            }
        }

        func legacyBlob(_ path: String) -> (digest: Digest, size: UInt64)? {
            var p = path
            while p.hasPrefix("./") { p.removeFirst(2) }
            var hops = 0
            while let target = links[p], hops < 8 { p = target; hops += 1 }
            return legacy[p]
        }
    }

    // MARK: - The graph

    private func importFrom(_ source: inout some Source, added: inout [Digest]) throws -> [ImportedImage] {
        var tagged: [(ImageReference, Descriptor)] = []
        var expansions: [(Digest, [Digest])] = [] // manifest -> children, parents after children
        var sizes: [Digest: Int] = [:]

        if let indexBytes = try source.metadata("index.json") {
            if let layout = try source.metadata("oci-layout") {
                let version = (try? JSONSerialization.jsonObject(with: Data(layout)) as? [String: Any])?["imageLayoutVersion"] as? String
                guard version == "1.0.0" else { throw BlobStoreError(.invalidArgument, "oci-layout has an unsupported imageLayoutVersion") }
            }
            let index: Manifest
            do {
                index = try Manifest(parsing: indexBytes, declaredType: MediaType.ociIndex)
            } catch let e as BlobStoreError {
                throw BlobStoreError(e.code, "index.json: \(e.message)")
            }
            for (i, d) in index.manifests.enumerated() {
                tagged.append((try reference(for: d, position: i, count: index.manifests.count), d))
            }
        } else if let legacyBytes = try source.metadata("manifest.json") {
            tagged = try legacyImages(legacyBytes, source: &source, added: &added)
        } else {
            throw BlobStoreError(.invalidArgument, "not an image: no index.json (OCI layout) or manifest.json (docker save)")
        }

        // Walk every image's graph, ingesting and parsing as we go.
        var visited = Set<Digest>()
        func walk(_ d: Descriptor, from parent: String) throws {
            guard visited.insert(d.digest).inserted else { return }
            do {
                try source.ensureBlob(d, store: store, added: &added)
            } catch let e as BlobStoreError where e.code == .notFound {
                throw BlobStoreError(.notFound, "\(e.message), referenced by \(parent)")
            }
            guard MediaType.isManifest(d.mediaType) || MediaType.isIndex(d.mediaType) else { return }
            guard d.size <= UInt64(ImageImporter.maxMetadataSize) else {
                throw BlobStoreError(.invalidArgument, "manifest \(d.digest) is too large (\(d.size) bytes)")
            }
            let m: Manifest
            do {
                m = try Manifest(parsing: try store.readAll(d.digest), declaredType: d.mediaType)
            } catch let e as BlobStoreError {
                throw BlobStoreError(e.code, "manifest \(d.digest): \(e.message)")
            }
            for child in m.children { try walk(child, from: "manifest \(d.digest)") }
            expansions.append((d.digest, m.children.map(\.digest)))
            sizes[d.digest] = 1 + m.children.count
        }
        for (ref, d) in tagged { try walk(d, from: "\(ref)") }

        // One transaction: every manifest's references, then the tags.
        try store.index.write { txn in
            for (manifest, children) in expansions {
                try Store.expand(txn, manifest: manifest, children: children)
            }
            for (ref, d) in tagged {
                try Store.setTag(txn, ref, manifest: d.digest, mediaType: d.mediaType)
            }
        }
        return try tagged.map { ref, d in
            ImportedImage(reference: ref.description, manifest: d.digest, mediaType: d.mediaType, blobs: try store.imageBlobs(of: d.digest).count)
        }
    }

    /// The tag an index.json entry gets.
    private func reference(for d: Descriptor, position: Int, count: Int) throws -> ImageReference {
        if let full = d.annotations?["io.containerd.image.name"], let ref = try? ImageReference(parsing: full), ref.tag != nil {
            return ref
        }
        if let name = d.annotations?["org.opencontainers.image.ref.name"] {
            if name.contains(":") || name.contains("/"), let ref = try? ImageReference(parsing: name), ref.tag != nil { return ref }
            return try ImageReference(name: defaultName, tag: name)
        }
        return try ImageReference(name: defaultName, tag: count == 1 ? "latest" : "sha256-" + d.digest.short)
    }

    /// `docker save`'s legacy form: manifest.json names a config file and layer tars per
    /// image; a Docker v2 manifest is made for each (deterministic bytes, so importing the
    /// same archive twice gives the same digest).
    private func legacyImages(_ bytes: [UInt8], source: inout some Source, added: inout [Digest]) throws -> [(ImageReference, Descriptor)] {
        guard let list = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: Any]] else {
            throw BlobStoreError(.invalidArgument, "manifest.json is not a JSON list of images")
        }
        var result: [(ImageReference, Descriptor)] = []
        for (i, entry) in list.enumerated() {
            guard let configPath = entry["Config"] as? String, let layerPaths = entry["Layers"] as? [String] else {
                throw BlobStoreError(.invalidArgument, "manifest.json entry \(i) lacks Config or Layers")
            }
            let found: [UInt8]?
            do {
                found = try source.metadata(configPath)
            } catch let e as BlobStoreError {
                throw BlobStoreError(e.code, "config \(configPath) named by manifest.json: \(e.message)", errno: e.errno)
            }
            guard let configBytes = found else {
                throw BlobStoreError(.notFound, "config \(configPath) named by manifest.json is missing from the archive")
            }
            let config = try store.ingest(bytes: configBytes, mediaType: MediaType.dockerConfig)
            if !config.alreadyPresent { added.append(config.digest) }
            var layers: [String] = []
            for p in layerPaths {
                guard let layer = source.legacyBlob(p) else {
                    throw BlobStoreError(.notFound, "layer \(p) named by manifest.json is missing from the archive")
                }
                layers.append(#"{"mediaType":"\#(MediaType.dockerLayer)","size":\#(layer.size),"digest":"\#(layer.digest)"}"#)
            }
            let manifest = #"{"schemaVersion":2,"mediaType":"\#(MediaType.dockerManifest)","config":{"mediaType":"\#(MediaType.dockerConfig)","size":\#(configBytes.count),"digest":"\#(config.digest)"},"layers":[\#(layers.joined(separator: ","))]}"#
            let m = try store.ingest(bytes: Array(manifest.utf8), mediaType: MediaType.dockerManifest)
            if !m.alreadyPresent { added.append(m.digest) }
            let descriptor = Descriptor(mediaType: MediaType.dockerManifest, digest: m.digest, size: UInt64(manifest.utf8.count))
            let tags = (entry["RepoTags"] as? [String]) ?? []
            if tags.isEmpty {
                result.append((try ImageReference(name: defaultName, tag: list.count == 1 ? "latest" : "sha256-" + m.digest.short), descriptor))
            }
            for t in tags { result.append((try ImageReference(parsing: t), descriptor)) }
        }
        return result
    }

    /// Drops blobs a failed import added that nothing refers to.
    private func discard(_ digests: [Digest]) throws {
        try store.index.write { txn in
            for d in digests {
                guard let blob = try Store.blob(txn, d), !blob.isReferenced else { continue }
                _ = try Store.deleteBlob(txn, d, blob)
            }
        }
    }
}

func readSmallFile(_ file: FileHandle) throws -> [UInt8] {
    let size = try file.size()
    guard size <= UInt64(ImageImporter.maxMetadataSize) else {
        throw BlobStoreError(.invalidArgument, "\(file.path) is too large (\(size) bytes)")
    }
    var bytes = [UInt8](repeating: 0, count: Int(size))
    let n = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
    return Array(bytes.prefix(n))
}
