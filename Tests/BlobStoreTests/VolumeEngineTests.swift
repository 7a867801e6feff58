import BlobStore
import BlobVolumes
import Foundation
import GC
import XCTest

final class VolumeEngineTests: XCTestCase {
    private func snapshotListing(_ store: Store, _ name: String) throws -> [String] {
        let snapshot = try XCTUnwrap(try store.volume(name).snapshot)
        let reader = tarReader(try store.readAll(snapshot))
        var paths: [String] = []
        while let entry = try reader.next() { paths.append(entry.path) }
        return paths
    }

    /// Mounts are counted by ID; only the last unmount records a version, and the data is
    /// the directory's.
    func testLastUnmountRecordsTheDirectory() throws {
        let store = try makeStore(self)
        let engine = try VolumeEngine(store: store)
        _ = try engine.create("v")
        let path = try engine.mount("v", id: "a")
        XCTAssertEqual(try engine.mount("v", id: "b"), path)
        try Data("one".utf8).write(to: URL(fileURLWithPath: path + "/one"))
        try engine.unmount("v", id: "a")
        engine.waitForRecordings()
        XCTAssertNil(try store.volume("v").snapshot, "b still has it mounted")
        try engine.unmount("v", id: "b")
        engine.waitForRecordings()
        XCTAssertTrue(try snapshotListing(store, "v").contains { $0.hasSuffix("one") })
        XCTAssertThrowsError(try engine.unmount("v", id: "b"), "an unknown mount ID is an error")

        // A container that only reads makes no new version; any write does.
        let recorded = try store.volume("v").snapshot
        _ = try engine.mount("v", id: "c")
        _ = FileManager.default.contents(atPath: path + "/one")
        try engine.unmount("v", id: "c")
        engine.waitForRecordings()
        XCTAssertEqual(try store.volume("v").snapshot, recorded)
        _ = try engine.mount("v", id: "d")
        chmod(path + "/one", 0o600)
        try engine.unmount("v", id: "d")
        engine.waitForRecordings()
        XCTAssertNotEqual(try store.volume("v").snapshot, recorded, "a chmod is a change")
        XCTAssertThrowsError(try engine.create("w", options: ["size": "1G"])) { error in
            XCTAssertTrue("\(error)".contains("unknown volume option"), "\(error)")
        }
        XCTAssertThrowsError(try store.volume("w"), "nothing was created")
    }

    /// A crash after the last unmount but before its version was recorded leaves the
    /// directory marked dirty; the next engine on the store records it at start.
    func testAVersionLeftUnrecordedIsRecordedAtRestart() throws {
        let store = try makeStore(self)
        do {
            let engine = try VolumeEngine(store: store)
            _ = try engine.create("v")
            let path = try engine.mount("v", id: "a")
            try Data("before".utf8).write(to: URL(fileURLWithPath: path + "/file"))
            try engine.unmount("v", id: "a")
            engine.waitForRecordings()
        }
        let first = try XCTUnwrap(try store.volume("v").snapshot)
        // What a crash between the unmount and the recording leaves: a changed directory,
        // no mounts, the dirty mark.
        let work = store.root + "/volume-work/v"
        try Data("after".utf8).write(to: URL(fileURLWithPath: work + "/data/file2"))
        try Data().write(to: URL(fileURLWithPath: work + "/dirty"))
        let restarted = try VolumeEngine(store: store)
        restarted.waitForRecordings()
        XCTAssertNotEqual(try store.volume("v").snapshot, first)
        XCTAssertTrue(try snapshotListing(store, "v").contains { $0.hasSuffix("file2") })
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/dirty"))
        _ = try GarbageCollector(store: store).collect()
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }

    /// Each unmount that changed something is a version; an earlier one can be restored
    /// (not while mounted) and the next mount shows it. While mounted, the volume is held:
    /// `volume rm` and `prune` from another process leave it alone.
    func testUnmountsMakeVersionsAndRestoreBringsOneBack() throws {
        let store = try makeStore(self)
        let engine = try VolumeEngine(store: store, holder: "test-engine")
        _ = try engine.create("v")
        for text in ["first", "second"] {
            let path = try engine.mount("v", id: text)
            XCTAssertEqual(try store.volume("v").holds, ["test-engine"])
            XCTAssertThrowsError(try store.removeVolume("v"))
            XCTAssertEqual(try store.pruneVolumes(), [])
            try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/file"))
            try engine.unmount("v", id: text)
            engine.waitForRecordings()
            XCTAssertEqual(try store.volume("v").holds, [], "let go once recorded")
        }
        XCTAssertEqual(try engine.versions("v").count, 2)

        let path = try engine.mount("v", id: "x")
        XCTAssertThrowsError(try engine.restore("v", version: 1), "not while mounted")
        try engine.unmount("v", id: "x")
        XCTAssertEqual(try engine.restore("v", version: 1), 3)
        let again = try engine.mount("v", id: "y")
        XCTAssertEqual(again, path)
        XCTAssertEqual(try String(contentsOfFile: again + "/file", encoding: .utf8), "first")
        try engine.unmount("v", id: "y")
        engine.waitForRecordings()
        XCTAssertEqual(try engine.versions("v").count, 3, "reading the restored content made no version")
        try engine.remove("v")
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.totals().blobs, 0)
    }

    /// `from=IMAGE:PATH` seeds a volume with an image's directory (its layers merged), at
    /// a small fraction of the bytes the files take; a bad image or path creates nothing.
    func testAVolumeSeededFromAnImageReusesItsChunks() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 5300)
        let big = random.bytes(4 << 20), config = random.text(200_000)
        let base = try ImageFixture.layer([("srv/data/big", big), ("srv/data/old", Array("x".utf8)), ("etc/conf", config)])
        let top = try ImageFixture.layer([("srv/data/.wh.old", []), ("srv/data/new", Array("new".utf8))])
        let layout = try makeTemporaryDirectory(self)
        try ImageFixture(layers: [base, top], label: "seed").writeLayout(layout, tag: "v1")
        _ = try ImageImporter(store: store, defaultName: "app").importImages(from: layout)
        let engine = try VolumeEngine(store: store)
        XCTAssertThrowsError(try engine.create("bad", options: ["from": "app:v1:/missing"]))
        XCTAssertThrowsError(try engine.create("bad", options: ["from": "nosuch:v1"]))
        XCTAssertThrowsError(try store.volume("bad"), "nothing was created")

        let before = try store.totals().storedBytes
        _ = try engine.create("seeded", options: ["from": "app:v1:/srv/data"])
        let added = try store.totals().storedBytes - before
        XCTAssertEqual(try snapshotListing(store, "seeded").filter { !$0.hasSuffix("/") }.sorted(), ["big", "new"])
        print("seeded 4 MiB + 3 bytes of files: \(added) bytes stored")
        XCTAssertLessThan(added, UInt64(big.count / 20), "the 4 MiB file's chunks are the layer's: \(added) bytes added")
        let path = try engine.mount("seeded", id: "a")
        XCTAssertEqual(FileManager.default.contents(atPath: path + "/big"), Data(big))
        try engine.unmount("seeded", id: "a")
        engine.waitForRecordings()
        _ = try engine.create("seeded", options: ["from": "app:v1:/etc"]) // exists: unchanged
        XCTAssertEqual(try engine.versions("seeded").count, 1)
    }
}
