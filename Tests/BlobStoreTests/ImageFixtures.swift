import BlobStore
import Foundation
import XCTest

/// Builds small but real image sources on disk: OCI image layouts and `docker save`
/// tarballs, with layers that are real tar archives.
struct ImageFixture {
    var layers: [[UInt8]]
    var config: [UInt8]
    var manifest: [UInt8]
    var manifestDigest: Digest { manifest.sha256 }
    var blobs: [[UInt8]] { [config] + layers + [manifest] }

    /// A layer: a tar holding `files` (path -> content).
    static func layer(_ files: [(String, [UInt8])]) throws -> [UInt8] {
        var out: [UInt8] = []
        var writer = TarWriter { out.append(contentsOf: $0) }
        for (path, content) in files {
            try writer.writeEntry(TarEntry(path: path, kind: .regular, size: UInt64(content.count), mode: 0o644, mtime: 1_700_000_000), content: content)
        }
        try writer.finish()
        return out
    }

    /// A decompression bomb: a tar holding one file of `megabytes` MiB of zeros, piped
    /// through `compressor` (a shell command, e.g. `gzip -1`), which makes it a few hundred
    /// KiB. Built in `scratch` with tar, so the zeros never sit in memory.
    static func zeroFilledLayer(megabytes: Int, compressor: String, scratch: String) throws -> [UInt8] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "set -e; cd \"$1\"; truncate -s \(megabytes)M zeros; tar -cf - zeros | \(compressor) > zeros.layer; rm zeros",
                       "sh", scratch]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw BlobStoreError(.io, "could not make a \(compressor) layer in \(scratch)") }
        defer { try? FileManager.default.removeItem(atPath: scratch + "/zeros.layer") }
        return Array(try XCTUnwrap(FileManager.default.contents(atPath: scratch + "/zeros.layer")))
    }

    init(layers: [[UInt8]], label: String) {
        self.layers = layers
        let diffIDs = layers.map { "\"\($0.sha256)\"" }.joined(separator: ",")
        config = Array(#"{"architecture":"amd64","os":"linux","config":{"Labels":{"fixture":"\#(label)"}},"rootfs":{"type":"layers","diff_ids":[\#(diffIDs)]}}"#.utf8)
        let layerDescriptors = layers.map { #"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\#($0.sha256)","size":\#($0.count)}"# }
        manifest = Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(config.sha256)","size":\#(config.count)},"layers":[\#(layerDescriptors.joined(separator: ","))]}"#.utf8)
    }

    /// An image whose layers are the gzip of `tars` (made with gzip -n in `scratch`), as
    /// registries serve them: the store keeps each layer's decompressed tar beside it.
    static func gzipped(_ tars: [[UInt8]], label: String, scratch: String) throws -> ImageFixture {
        var fixture = ImageFixture(layers: [], label: label)
        fixture.layers = try tars.enumerated().map { i, tar in
            let path = scratch + "/layer-\(i).tar"
            FileManager.default.createFile(atPath: path, contents: Data(tar))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "gzip -n -c \"$1\" > \"$1.gz\"", "sh", path]
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw BlobStoreError(.io, "gzip failed in \(scratch)") }
            return Array(try XCTUnwrap(FileManager.default.contents(atPath: path + ".gz")))
        }
        let diffIDs = tars.map { "\"\($0.sha256)\"" }.joined(separator: ",")
        fixture.config = Array(#"{"architecture":"amd64","os":"linux","config":{"Labels":{"fixture":"\#(label)"}},"rootfs":{"type":"layers","diff_ids":[\#(diffIDs)]}}"#.utf8)
        let descriptors = fixture.layers.map { #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#($0.sha256)","size":\#($0.count)}"# }
        fixture.manifest = Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(fixture.config.sha256)","size":\#(fixture.config.count)},"layers":[\#(descriptors.joined(separator: ","))]}"#.utf8)
        return fixture
    }

    /// Writes an OCI image layout naming this image `tag`.
    func writeLayout(_ dir: String, tag: String, indexOverride: [UInt8]? = nil) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/blobs/sha256", withIntermediateDirectories: true)
        for blob in blobs {
            fm.createFile(atPath: dir + "/blobs/sha256/" + blob.sha256.hex, contents: Data(blob))
        }
        fm.createFile(atPath: dir + "/oci-layout", contents: Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        let index = indexOverride ?? Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifest.count),"annotations":{"org.opencontainers.image.ref.name":"\#(tag)"}}]}"#.utf8)
        fm.createFile(atPath: dir + "/index.json", contents: Data(index))
    }

    /// Writes a legacy `docker save` tarball (manifest.json, <config>.json, <id>/layer.tar).
    func writeDockerSave(_ path: String, repoTag: String) throws {
        var out: [UInt8] = []
        var writer = TarWriter { out.append(contentsOf: $0) }
        var layerPaths: [String] = []
        for (i, layer) in layers.enumerated() {
            let dir = String(repeating: String(i), count: 64)
            layerPaths.append("\(dir)/layer.tar")
            try writer.writeEntry(TarEntry(path: "\(dir)/", kind: .directory, mtime: 1))
            try writer.writeEntry(TarEntry(path: "\(dir)/layer.tar", kind: .regular, size: UInt64(layer.count), mtime: 1), content: layer)
        }
        let configName = config.sha256.hex + ".json"
        try writer.writeEntry(TarEntry(path: configName, kind: .regular, size: UInt64(config.count), mtime: 1), content: config)
        let manifestJSON = Array(#"[{"Config":"\#(configName)","RepoTags":["\#(repoTag)"],"Layers":[\#(layerPaths.map { "\"\($0)\"" }.joined(separator: ","))]}]"#.utf8)
        try writer.writeEntry(TarEntry(path: "manifest.json", kind: .regular, size: UInt64(manifestJSON.count), mtime: 1), content: manifestJSON)
        try writer.finish()
        FileManager.default.createFile(atPath: path, contents: Data(out))
    }
}

/// The visible state of a store, to prove a failed operation changed nothing.
struct StoreSnapshot: Equatable {
    var blobs: [Digest]
    var images: [String]
    var totals: StoreTotals

    init(_ store: Store) throws {
        blobs = try store.list().map(\.digest)
        images = try store.images().map(\.reference)
        totals = try store.totals()
    }
}
