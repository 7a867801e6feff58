import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes an image out of the store with its manifests and blobs byte for byte as stored,
/// so every digest is unchanged: as an OCI image layout directory, or as a tar that
/// `docker load` accepts (the OCI layout plus the legacy `manifest.json`, as Docker 25+
/// writes it).
public struct ImageExporter {
    public let store: Store

    public init(store: Store) { self.store = store }

    /// The image's blobs in a fixed order, and the index.json and manifest.json to go with them.
    private func plan(_ reference: ImageReference) throws -> (info: ImageInfo, blobs: [Digest], index: [UInt8], dockerManifest: [UInt8]) {
        let info = try store.image(reference)
        let blobs = try store.imageBlobs(of: info.manifest)
        let size = try store.stat(info.manifest).size
        let mediaType = try info.mediaType ?? store.manifest(info.manifest).mediaType
        let refName = "\(info.name):\(info.tag.isEmpty ? "latest" : info.tag)"
        let index: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": MediaType.ociIndex,
            "manifests": [[
                "mediaType": mediaType,
                "digest": info.manifest.description,
                "size": size,
                "annotations": [
                    "io.containerd.image.name": refName,
                    "org.opencontainers.image.ref.name": info.tag.isEmpty ? "latest" : info.tag,
                ],
            ] as [String: Any]],
        ]
        // docker load reads manifest.json: one entry per image manifest (per platform).
        var entries: [[String: Any]] = []
        for d in blobs {
            guard let m = try? store.manifest(d), !m.isIndex, let config = m.config else { continue }
            entries.append([
                "Config": "blobs/sha256/" + config.digest.hex,
                "RepoTags": [refName],
                "Layers": m.layers.map { "blobs/sha256/" + $0.digest.hex },
            ])
        }
        let json: (Any) throws -> [UInt8] = { Array(try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .withoutEscapingSlashes])) }
        return (info, blobs, try json(index), try json(entries))
    }

    static let layoutFile = Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)

    /// Writes an OCI image layout into `path` (created; it must not exist or be empty).
    public func exportLayout(_ reference: ImageReference, to path: String) throws {
        let p = try plan(reference)
        let fm = FileManager.default
        if let existing = try? fm.contentsOfDirectory(atPath: path), !existing.isEmpty {
            throw BlobStoreError(.alreadyExists, "\(path) exists and is not empty")
        }
        try fm.createDirectory(atPath: path + "/blobs/sha256", withIntermediateDirectories: true)
        for d in p.blobs {
            let target = path + "/blobs/sha256/" + d.hex
            let file = try FileHandle(path: target + ".partial", flags: O_WRONLY | O_CREAT | O_TRUNC)
            var offset: UInt64 = 0
            try store.read(d) { chunk in
                try file.write(chunk, at: offset)
                offset += UInt64(chunk.count)
            }
            try file.sync()
            guard rename(target + ".partial", target) == 0 else { throw BlobStoreError.io("rename", path: target) }
        }
        try writeFile(path + "/oci-layout", ImageExporter.layoutFile)
        try writeFile(path + "/index.json", p.index)
        try FileHandle.syncDirectory(path)
    }

    /// Writes a `docker load`-able tar to `path` ("-" for stdout).
    public func exportDockerArchive(_ reference: ImageReference, to path: String) throws {
        let p = try plan(reference)
        let fd: Int32 = path == "-" ? 1 : open(path + ".partial", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BlobStoreError.io("create", path: path) }
        do {
            var writer = TarWriter { buffer in
                var done = 0
                while done < buffer.count {
                    let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
                    if n < 0 { if errno == EINTR { continue }; throw BlobStoreError.io("write", path: path) }
                    done += n
                }
            }
            let now = Int64(Date().timeIntervalSince1970)
            try writer.writeEntry(TarEntry(path: "blobs/", kind: .directory, mtime: now))
            try writer.writeEntry(TarEntry(path: "blobs/sha256/", kind: .directory, mtime: now))
            for d in p.blobs {
                let size = try store.stat(d).size
                try writer.beginEntry(TarEntry(path: "blobs/sha256/" + d.hex, kind: .regular, size: size, mode: 0o644, mtime: now))
                try store.read(d) { try writer.writeContent($0) }
                try writer.endEntry()
            }
            try writer.writeEntry(TarEntry(path: "index.json", kind: .regular, size: UInt64(p.index.count), mtime: now), content: p.index)
            try writer.writeEntry(TarEntry(path: "manifest.json", kind: .regular, size: UInt64(p.dockerManifest.count), mtime: now), content: p.dockerManifest)
            try writer.writeEntry(TarEntry(path: "oci-layout", kind: .regular, size: UInt64(ImageExporter.layoutFile.count), mtime: now), content: ImageExporter.layoutFile)
            try writer.finish()
            if path != "-" {
                guard fsync(fd) == 0 else { throw BlobStoreError.io("fsync", path: path) }
                close(fd)
                guard rename(path + ".partial", path) == 0 else { throw BlobStoreError.io("rename", path: path) }
            }
        } catch {
            if path != "-" { close(fd); unlink(path + ".partial") }
            throw error
        }
    }

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let file = try FileHandle(path: path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        try bytes.withUnsafeBytes { try file.write($0, at: 0) }
        try file.sync()
    }
}
