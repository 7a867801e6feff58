import BlobStore
import Foundation

/// A volume's first content taken from an image of the store (`-o from=IMAGE[:PATH]`), the
/// way Docker copies an image's directory into a new volume — except that the copy is
/// deduplicated: the files' chunks are the image layers' chunks, so it costs the new tar
/// headers and the chunks cut around them, not the files again.
public struct ImageSeed: Sendable, Equatable {
    public var image: ImageReference
    /// Components of the directory inside the image; empty for its whole root.
    public var path: [String]

    /// Parses `IMAGE[:TAG][:PATH]`; PATH is absolute (`alpine:3.19:/etc`, `data:/srv`).
    public init(parsing text: String) throws {
        var imageText = text
        var pathText = "/"
        if let colonSlash = text.range(of: ":/") {
            imageText = String(text[..<colonSlash.lowerBound])
            pathText = String(text[text.index(after: colonSlash.lowerBound)...])
        }
        image = try ImageReference(parsing: imageText)
        path = pathText.split(separator: "/").map(String.init).filter { $0 != "." }
        if path.contains("..") { throw BlobStoreError(.invalidArgument, "from=\(text): the path may not contain ..") }
    }

    /// The image's file system (its layers applied in order, whiteouts honoured) under
    /// `path`, archived as a volume snapshot; the volume `name` gets it as its content.
    /// The blob is protected by a lease until the volume holds it.
    public func seed(_ name: String, store: Store, scratch: String) throws {
        let info = try store.image(image)
        let manifest = try store.platformManifest(info.manifest)
        let root = scratch + "/rootfs"
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for layer in manifest.layers {
            // The layer's plain tar: decompressed once and kept (deduplicated) by the index.
            let tar = try store.layerIndex(layer.digest).tar
            let source = try BlobByteSource(store: store, digest: tar)
            try TarExtractor.extract(TarReader(validatePaths: true) { try source.read(into: $0) }, into: root, asLayer: true)
        }
        let directory = ([root] + path).joined(separator: "/")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BlobStoreError(.notFound, "image \(info.reference) has no directory /\(path.joined(separator: "/"))")
        }
        try store.withLease("volume \(name) seed") { _ in
            try store.setVolumeSnapshot(name, try store.ingestDirectory(directory).digest)
        }
    }
}
