import BlobStore
import Foundation

/// The image every container runs: an OCI layout written here (config, two layer tars,
/// manifest, index.json) and imported with `ImageImporter`, so the image goes in the way
/// real ones do, through public API only.
enum BenchImage {
    static let name = "bench"
    static let tag = "1"

    /// A tar holding one file per entry of `files`.
    static func tar(_ files: [(String, [UInt8])]) throws -> [UInt8] {
        var out: [UInt8] = []
        var writer = TarWriter { out.append(contentsOf: $0) }
        for (path, content) in files {
            try writer.writeEntry(TarEntry(path: path, kind: .regular, size: UInt64(content.count), mode: 0o644, mtime: 1_700_000_000),
                                  content: content)
        }
        try writer.finish()
        return out
    }

    /// Writes the layout under `dir`, imports it and returns its reference (`bench:1`).
    static func importInto(_ store: Store, dir: String, seed: UInt64) throws -> ImageReference {
        var random = BenchRandom(seed: seed ^ 0x1AA6E)
        let layers = [
            try tar([("bin/app", random.bytes(256 << 10))]),
            try tar([("etc/app.conf", Array(repeating: UInt8(ascii: "x"), count: 4096)), ("lib/libapp.so", random.bytes(64 << 10))]),
        ]
        let diffIDs = layers.map { "\"\(SHA256Hasher.hash($0))\"" }.joined(separator: ",")
        let config = Array(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[\#(diffIDs)]}}"#.utf8)
        let layerJSON = layers.map {
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\#(SHA256Hasher.hash($0))","size":\#($0.count)}"#
        }.joined(separator: ",")
        let manifest = Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(SHA256Hasher.hash(config))","size":\#(config.count)},"layers":[\#(layerJSON)]}"#.utf8)
        let index = Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(SHA256Hasher.hash(manifest))","size":\#(manifest.count),"annotations":{"org.opencontainers.image.ref.name":"\#(tag)"}}]}"#.utf8)

        try FileManager.default.createDirectory(atPath: dir + "/blobs/sha256", withIntermediateDirectories: true)
        for blob in [config, manifest] + layers {
            try write(blob, to: dir + "/blobs/sha256/" + SHA256Hasher.hash(blob).hex)
        }
        try write(Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), to: dir + "/oci-layout")
        try write(index, to: dir + "/index.json")
        _ = try ImageImporter(store: store, defaultName: name).importImages(from: dir)
        return try ImageReference(name: name, tag: tag)
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw BlobStoreError(.io, "could not write \(path)")
        }
    }
}
