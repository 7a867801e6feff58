import BlobStore
import Foundation
import XCTest

final class CrashTests: XCTestCase {
    /// A put killed with SIGKILL half-way leaves a store that opens, keeps every earlier
    /// blob intact, shows nothing of the partial one, and takes new puts.
    func testKillDuringPutLeavesAConsistentStore() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        var random = TestRandom(seed: 700)
        let earlier = random.bytes(3 << 20)
        do {
            let store = try Store.create(at: root)
            _ = try store.put(earlier)
        }
        for round in 0..<3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try blobctlPath())
            process.arguments = ["--store", root, "put", "-"]
            let input = Pipe()
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Feed enough for several segments to be chunked, compressed and appended.
            var r = TestRandom(seed: 800 + UInt64(round))
            for _ in 0..<(6 + round * 4) {
                input.fileHandleForWriting.write(Data(r.text(4 << 20)))
            }
            usleep(200_000)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal)
            try? input.fileHandleForWriting.close()
        }
        let store = try Store.open(at: root)
        XCTAssertEqual(try store.list().map(\.digest), [earlier.sha256], "the partial blobs are absent")
        XCTAssertEqual(try store.readAll(earlier.sha256, verify: true), earlier)
        try assertCountsConsistent(store)
        // The dead processes' leases do not block anything, and new puts work.
        let next = random.bytes(2 << 20)
        XCTAssertEqual(try store.put(next).digest, next.sha256)
        XCTAssertEqual(try store.readAll(next.sha256), next)
        XCTAssertTrue(try store.leases().allSatisfy { !store.isAlive($0) })
    }

    /// Reopening after an unclean exit (no close, pack left open) reads everything back.
    func testReopenAfterUncleanExit() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        _ = try Store.create(at: root)
        var random = TestRandom(seed: 701)
        let data = random.bytes(1 << 20)
        let path = dir + "/blob"
        FileManager.default.createFile(atPath: path, contents: Data(data))
        let r = try runBlobctl(["--store", root, "put", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let store = try Store.open(at: root)
        XCTAssertEqual(try store.readAll(data.sha256, verify: true), data)
    }
}
