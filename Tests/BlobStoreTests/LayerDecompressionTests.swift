import BlobStore
import Foundation
import GC
import XCTest

/// Decompression bombs: a compressed layer that inflates far beyond its size is refused
/// when it is indexed, after bounded work, with an error that names the layer, the limit
/// and where to raise it — and the failed indexing leaves nothing behind.
final class LayerDecompressionTests: XCTestCase {
    /// 512 MiB of zeros compress to well under 1 MiB with gzip or zstd: past the default
    /// ratio limit (100:1 once more than 64 MiB came out).
    func testGzipAndZstdBombsAreRefusedAndLeaveNothing() throws {
        for compressor in ["gzip -1", "zstd -q -3"] {
            let store = try makeStore(self)
            let dir = try makeTemporaryDirectory(self)
            let bomb = try ImageFixture.zeroFilledLayer(megabytes: 512, compressor: compressor, scratch: dir)
            XCTAssertLessThan(bomb.count, 4 << 20, compressor)
            try ImageFixture(layers: [bomb], label: "bomb").writeLayout(dir + "/layout", tag: "1")
            _ = try ImageImporter(store: store, defaultName: "bomb").importImages(from: dir + "/layout")
            let before = try StoreSnapshot(store)

            XCTAssertThrowsError(try store.layerIndex(bomb.sha256), compressor) { error in
                let message = "\(error)"
                for part in [bomb.sha256.description, "layerDecompression.maxRatio", store.root + "/config.json"] {
                    XCTAssertTrue(message.contains(part), "\(compressor): error \"\(message)\" should mention \(part)")
                }
            }
            // Nothing was indexed or kept: no plain-tar blob, no lease, a healthy store.
            XCTAssertEqual(try store.list().map(\.digest), before.blobs, compressor)
            XCTAssertTrue(try store.leases().isEmpty, compressor)
            _ = try GarbageCollector(store: store).collect()
            XCTAssertEqual(try StoreSnapshot(store), before, compressor)
            XCTAssertTrue(try StoreChecker(store: store).check().isHealthy, compressor)
            try assertCountsConsistent(store)
            // Refused again the next time: no half-built index was kept.
            XCTAssertThrowsError(try store.layerIndex(bomb.sha256), compressor)
        }
    }

    /// The limits are the store's, from config.json: a lower cap refuses a layer the defaults
    /// accept, naming that knob; a config.json written before the knob existed opens with the
    /// defaults, under which a small layer of zeros (1000:1, but below the 64 MiB floor) is fine.
    func testLimitsComeFromTheStoreConfig() throws {
        var config = StoreConfig()
        config.layerDecompression = DecompressionLimits(maxBytes: 8 << 20, maxRatio: 0, ratioFloorBytes: 0)
        let store = try makeStore(self, config: config)
        let dir = try makeTemporaryDirectory(self)
        let layer = try ImageFixture.zeroFilledLayer(megabytes: 16, compressor: "gzip -1", scratch: dir)
        try ImageFixture(layers: [layer], label: "zeros").writeLayout(dir + "/layout", tag: "1")
        _ = try ImageImporter(store: store, defaultName: "zeros").importImages(from: dir + "/layout")
        let before = try store.list().map(\.digest)
        XCTAssertThrowsError(try store.layerIndex(layer.sha256)) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .limitExceeded)
            XCTAssertTrue("\(error)".contains("more than 8 MiB"), "\(error)")
            XCTAssertTrue("\(error)".contains("layerDecompression.maxBytes in \(store.root)/config.json"), "\(error)")
        }
        XCTAssertEqual(try store.list().map(\.digest), before)
        XCTAssertTrue(try store.leases().isEmpty)

        // The store's config.json as an older blobctl wrote it: no layerDecompression.
        let path = store.root + "/config.json"
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        XCTAssertNotNil(json["layerDecompression"], "new stores write the limits out, where they can be edited")
        json["layerDecompression"] = nil
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let reopened = try Store.open(at: store.root)
        XCTAssertEqual(reopened.config.layerDecompression, .default)
        let index = try reopened.layerIndex(layer.sha256)
        XCTAssertEqual(index.entries.map(\.path), ["zeros"])
        XCTAssertEqual(index.entries.first?.size, 16 << 20)
    }

    /// Concatenated gzip members and zstd frames (what parallel compressors write) put the
    /// decompressor's output boundaries anywhere: the plain tar must still come out byte for
    /// byte, whatever is pending when the input runs out.
    func testMultiMemberLayersDecompressExactly() throws {
        var random = TestRandom(seed: 41)
        let tar = try ImageFixture.layer([("data.bin", random.bytes(9 << 20)), ("small", random.bytes(3000))])
        for split in [100 * 1024 + 7, 1 << 20, 4 << 20, (4 << 20) - 512] {
            for (compressor, name) in [("gzip -1 -c", "gzip"), ("zstd -q -c", "zstd")] {
                let store = try makeStore(self)
                let dir = try makeTemporaryDirectory(self)
                try Data(tar[..<split]).write(to: URL(fileURLWithPath: dir + "/a"))
                try Data(tar[split...]).write(to: URL(fileURLWithPath: dir + "/b"))
                let made = try runTool("/bin/sh", ["-c", "set -e; \(compressor) a > layer; \(compressor) b >> layer"], directory: dir)
                XCTAssertEqual(made.status, 0, made.stderr)
                let layer = Array(try XCTUnwrap(FileManager.default.contents(atPath: dir + "/layer")))
                try ImageFixture(layers: [layer], label: "members").writeLayout(dir + "/layout", tag: "1")
                _ = try ImageImporter(store: store, defaultName: "members").importImages(from: dir + "/layout")
                let index = try store.layerIndex(layer.sha256)
                XCTAssertEqual(index.tar, tar.sha256, "\(name), split at \(split): the plain tar differs")
                XCTAssertEqual(index.entries.map(\.path), ["data.bin", "small"], "\(name), split at \(split)")
            }
        }
    }

    /// A layer cut short, even by just its trailing checksum, is refused as truncated:
    /// never indexed as if it were whole.
    func testTruncatedLayersAreRefused() throws {
        var random = TestRandom(seed: 42)
        let tar = try ImageFixture.layer([("data.bin", random.bytes(300_000))])
        for (compressor, name) in [("gzip -1 -c", "gzip"), ("zstd -q -c", "zstd")] {
            let store = try makeStore(self)
            let dir = try makeTemporaryDirectory(self)
            try Data(tar).write(to: URL(fileURLWithPath: dir + "/a"))
            let made = try runTool("/bin/sh", ["-c", "\(compressor) a > layer"], directory: dir)
            XCTAssertEqual(made.status, 0, made.stderr)
            let whole = Array(try XCTUnwrap(FileManager.default.contents(atPath: dir + "/layer")))
            let cut = Array(whole.dropLast(4)) // gzip's length field, zstd's checksum
            try ImageFixture(layers: [cut], label: "cut").writeLayout(dir + "/layout", tag: "1")
            _ = try ImageImporter(store: store, defaultName: "cut").importImages(from: dir + "/layout")
            XCTAssertThrowsError(try store.layerIndex(cut.sha256), name) { error in
                XCTAssertTrue("\(error)".contains("truncated"), "\(name): \(error)")
            }
        }
    }
}
