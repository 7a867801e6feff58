/// Naming an image the ways Docker users do: `name[:tag]`, `name@sha256:…`, or its ID —
/// the digest of its manifest or of its config (Docker's image ID), in full or as a unique
/// prefix, with or without `sha256:`.
extension Store {
    /// What `text` names: the tagged images it matches (one or more tags of one manifest)
    /// and a reference that reaches that manifest.
    public struct ImageMatch: Sendable {
        public var reference: ImageReference
        /// The tags pointing at the manifest (empty for a digest nothing tags).
        public var tags: [ImageInfo]
    }

    public func findImage(_ text: String) throws -> ImageMatch {
        if text.contains("@") {
            let reference = try ImageReference(parsing: text)
            let info = try image(reference)
            return ImageMatch(reference: reference, tags: try images().filter { $0.manifest == info.manifest })
        }
        let hex = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        let looksLikeID = !hex.isEmpty && hex.count <= 64 && hex.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
        // A full digest first, then a tag of that name, then an ID prefix (as Docker does).
        if looksLikeID && (hex.count == 64 || text.hasPrefix("sha256:") || (try? image(ImageReference(parsing: text))) == nil) {
            let all = try images()
            var manifests: [Digest: [ImageInfo]] = [:]
            for info in all {
                var ids = [info.manifest]
                if let config = try? manifest(info.manifest).config?.digest { ids.append(config) }
                if ids.contains(where: { $0.hex.hasPrefix(hex) }) { manifests[info.manifest, default: []].append(info) }
            }
            if manifests.count > 1 {
                throw BlobStoreError(.invalidArgument, "\(text) matches several images: " + manifests.keys.map { String($0.hex.prefix(12)) }.sorted().joined(separator: ", "))
            }
            if let (manifest, tags) = manifests.first {
                let first = tags.sorted { $0.reference < $1.reference }[0]
                let reference = tags.count == 1 ? try ImageReference(name: first.name, tag: first.tag)
                                                : try ImageReference(parsing: "\(first.name)@\(manifest)")
                return ImageMatch(reference: reference, tags: tags)
            }
            if hex.count == 64 || text.hasPrefix("sha256:") { throw BlobStoreError(.notFound, "no image with ID or digest \(text)") }
        }
        let reference = try ImageReference(parsing: text)
        let info = try image(reference)
        return ImageMatch(reference: reference, tags: [info])
    }
}
