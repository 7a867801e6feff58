import BlobStore
import Foundation
import GC
import XCTest

/// Settled chunks share zstd frames (`PackFormat`): read back in any order and any range,
/// through index rebuilds, compaction of half-dead frames, and damage.
final class SettledFrameTests: XCTestCase {
    /// Text-like blobs at level 1, settled into frames.
    func settledStore(_ root: String, seed: UInt64, blobs: Int = 8) throws -> (store: Store, kept: [[UInt8]]) {
        let store = try Store.create(at: root, config: StoreConfig(compressionLevel: 1, settledLevel: 19, packSizeLimit: 4 << 20))
        var random = TestRandom(seed: seed)
        let kept = (0..<blobs).map { _ in random.text(600_000) }
        for blob in kept { _ = try store.put(blob) }
        _ = try Settler(store: store).settle()
        return (store, kept)
    }

    func framedMembers(_ store: Store) throws -> [(key: Digest, location: ChunkLocation)] {
        try store.chunkRecords().filter { $0.value.location.flags.contains(.framed) }.map { ($0.key, $0.value.location) }
    }

    func testSettledChunksShareFramesAndReadBackInAnyOrder() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, kept) = try settledStore(dir + "/s", seed: 9400)
        let members = try framedMembers(store)
        XCTAssertEqual(members.count, try store.chunkRecords().count, "every chunk of text is in a frame")
        XCTAssertTrue(members.contains { $0.location.frameBack > 0 }, "frames hold several chunks")
        XCTAssertTrue(members.allSatisfy { $0.location.flags.contains(.settled) && $0.location.flags.contains(.zstd) })

        // Each chunk alone, last members first (each decodes its frame's start again).
        for (key, location) in members.sorted(by: { $0.location.frameBack > $1.location.frameBack }) {
            var bytes = [UInt8](repeating: 0, count: Int(location.rawSize))
            try bytes.withUnsafeMutableBytes { try store.readChunk(key, at: location, into: $0, verify: true) }
            XCTAssertEqual(bytes.sha256, key)
        }
        // Whole blobs and random ranges, with the chunk cache off and on.
        var random = TestRandom(seed: 9401)
        for capacity in [0, 64 << 20] {
            store.chunkCache.setCapacity(capacity)
            for blob in kept {
                XCTAssertEqual(try store.readAll(blob.sha256), blob)
                for _ in 0..<4 {
                    let a = Int(random.next() % UInt64(blob.count))
                    let b = min(blob.count, a + 1 + Int(random.next() % 300_000))
                    var got: [UInt8] = []
                    try store.read(blob.sha256, range: UInt64(a)..<UInt64(b)) { got.append(contentsOf: $0) }
                    XCTAssertEqual(got, Array(blob[a..<b]), "range \(a)..<\(b)")
                }
            }
        }
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try assertCountsConsistent(store)
    }

    /// Compaction moves a frame's live members without its dead ones: each becomes a record
    /// of its own at the ingest level, and the next settling frames them again.
    func testCompactingHalfDeadFramesKeepsTheirLiveMembers() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, kept) = try settledStore(dir + "/s", seed: 9500)
        for blob in kept.enumerated().filter({ $0.offset % 2 == 1 }).map(\.element) { _ = try store.remove(blob.sha256) }
        let report = try GarbageCollector(store: store, compactionThreshold: 0.01).collect()
        XCTAssertGreaterThan(report.packsCompacted, 0)
        let survivors = kept.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        for blob in survivors { XCTAssertEqual(try store.readAll(blob.sha256, verify: true), blob) }
        XCTAssertTrue(try store.chunkRecords().values.contains { !$0.location.flags.contains(.framed) }, "unframed by compaction")
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try assertCountsConsistent(store)

        let settled = try Settler(store: store).settle()
        XCTAssertGreaterThan(settled.packsSettled, 0)
        XCTAssertTrue(try store.chunkRecords().values.allSatisfy { $0.location.flags.contains(.framed) })
        for blob in survivors { XCTAssertEqual(try store.readAll(blob.sha256, verify: true), blob) }
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try assertCountsConsistent(store)
    }

    /// The index rebuilt from packs alone knows the frames (frameBack is in each header).
    func testIndexRebuiltFromPacksReadsFramesBack() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        let kept: [[UInt8]]
        do {
            let (store, blobs) = try settledStore(root, seed: 9600, blobs: 4)
            XCTAssertTrue(try framedMembers(store).contains { $0.location.frameBack > 0 })
            kept = blobs
        }
        let rebuild = try runBlobctl(["--store", root, "fsck", "--rebuild-index"])
        XCTAssertEqual(rebuild.status, 0, rebuild.stderr)
        for (i, blob) in kept.enumerated() {
            let out = dir + "/out-\(i)"
            let get = try runBlobctl(["--store", root, "get", blob.sha256.description, "-o", out])
            XCTAssertEqual(get.status, 0, get.stderr)
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), blob)
        }
        let fsck = try runBlobctl(["--store", root, "fsck"])
        XCTAssertEqual(fsck.status, 0, fsck.stdout + fsck.stderr)
    }

    /// A frame read whole decodes straight into the caller's buffer, so the record headers
    /// are checked against the index before zstd writes: an index that disagrees with the
    /// frame (another chunk, another size) is a clear error, never bytes past the target.
    func testAnIndexThatDisagreesWithItsFrameFailsBeforeDecoding() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, _) = try settledStore(dir + "/s", seed: 9800, blobs: 2)
        let members = try framedMembers(store)
        let first = try XCTUnwrap(members.first { $0.location.frameBack == 0 })
        let other = try XCTUnwrap(members.first { $0.key != first.key })

        var shrunk = first.location
        shrunk.rawSize -= 100
        // The target is followed by guard bytes, which a decode past its end would overwrite.
        let target = Int(shrunk.rawSize)
        var small = [UInt8](repeating: 0xEE, count: target + 4096)
        XCTAssertThrowsError(try small.withUnsafeMutableBytes {
            try store.readChunk(first.key, at: shrunk, into: UnsafeMutableRawBufferPointer(rebasing: $0[..<target]), verify: false)
        }) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .corrupt)
            XCTAssertTrue("\(error)".contains("different chunk"), "\(error)")
        }
        XCTAssertTrue(small[target...].allSatisfy { $0 == 0xEE }, "nothing written past the target")
        var bytes = [UInt8](repeating: 0, count: Int(first.location.rawSize))
        XCTAssertThrowsError(try bytes.withUnsafeMutableBytes { try store.readChunk(other.key, at: first.location, into: $0, verify: false) }) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .corrupt)
        }
        try bytes.withUnsafeMutableBytes { try store.readChunk(first.key, at: first.location, into: $0, verify: true) }
        XCTAssertEqual(bytes.sha256, first.key)
    }

    /// A damaged frame member takes the members after it in its frame along (they decode
    /// from it): reads of them fail with an error, never wrong bytes; fsck reports each,
    /// even without reading chunks; the settler leaves the pack for fsck.
    func testADamagedFrameMemberIsReportedWithTheMembersAfterIt() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, kept) = try settledStore(dir + "/s", seed: 9700)
        let members = try framedMembers(store)
        let later = try XCTUnwrap(members.filter { $0.location.frameBack > 0 }.max { $0.location.frameBack < $1.location.frameBack })
        let frame = members.filter { $0.location.packID == later.location.packID && $0.location.frameStart == later.location.frameStart }
        let first = try XCTUnwrap(frame.first { $0.location.frameBack == 0 })
        let path = dir + "/s/packs/" + PackFormat.fileName(for: first.location.packID)
        let handle = try Foundation.FileHandle(forUpdating: URL(fileURLWithPath: path))
        let at = first.location.offset + UInt64(PackFormat.recordHeaderSize) + UInt64(first.location.storedSize / 2)
        try handle.seek(toOffset: at)
        let byte = try XCTUnwrap(try handle.read(upToCount: 1))
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: Data([byte[0] ^ 0x5A]))
        try handle.close()

        var bytes = [UInt8](repeating: 0, count: Int(later.location.rawSize))
        XCTAssertThrowsError(try bytes.withUnsafeMutableBytes { try store.readChunk(later.key, at: later.location, into: $0, verify: false) }) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .corrupt)
        }
        let quick = try StoreChecker(store: store).check(verifyChunks: false)
        XCTAssertEqual(quick.corrupt.count, frame.count, quick.corrupt.joined(separator: "\n"))
        let full = try StoreChecker(store: store).check()
        XCTAssertEqual(full.corrupt.count, frame.count, full.corrupt.joined(separator: "\n"))
        // Blobs with no chunk in that frame still read; the others fail, never with wrong bytes.
        for blob in kept {
            if let read = try? store.readAll(blob.sha256, verify: true) { XCTAssertEqual(read, blob) }
        }
        // New chunks land in the same (half-empty) pack, which makes it a candidate.
        var random = TestRandom(seed: 9701)
        _ = try store.put(random.text(300_000))
        let settler = Settler(store: store, threshold: 0)
        XCTAssertTrue(try settler.candidates().contains { $0.pack == first.location.packID })
        let settle = try settler.settle()
        XCTAssertGreaterThanOrEqual(settle.packsSkipped, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
    }
}
