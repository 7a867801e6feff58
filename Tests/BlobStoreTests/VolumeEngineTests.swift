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
}
