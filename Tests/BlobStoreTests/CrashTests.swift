import BlobStore
import GC
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
        for round in 0..<6 {
            let (process, input) = try startPut(root: root)
            // Feed enough for several segments to be chunked, compressed and appended.
            var r = TestRandom(seed: 800 + UInt64(round))
            for _ in 0..<(6 + round * 4) {
                input.fileHandleForWriting.write(Data(r.text(4 << 20)))
            }
            usleep(UInt32.random(in: 5_000...700_000)) // anywhere from mid-append to after the commit
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? input.fileHandleForWriting.close()
        }
        let store = try Store.open(at: root)
        XCTAssertEqual(try store.list().map(\.digest), [earlier.sha256], "the partial blobs are absent (stdin never ended)")
        XCTAssertEqual(try store.readAll(earlier.sha256, verify: true), earlier)
        try assertCountsConsistent(store)
        // The dead processes' leases do not block anything, and new puts work.
        let next = random.bytes(2 << 20)
        XCTAssertEqual(try store.put(next).digest, next.sha256)
        XCTAssertEqual(try store.readAll(next.sha256), next)
        XCTAssertTrue(try store.leases().allSatisfy { !store.isAlive($0) })
    }

    /// A server killed with SIGKILL right after serving pushes (its pack open, nothing
    /// sealed or closed): a fresh open reads every pushed blob back, the image is there,
    /// fsck passes and new writes work.
    func testReopenAfterUncleanExit() throws {
        let registry = try RegistryProcess(self)
        let image = try registryImage(seed: 702, layerCount: 3, layerBytes: 300_000)
        try registry.pushImage("library/crash", tag: "v1", image)
        registry.killHard()
        let store = try Store.open(at: registry.storePath)
        for blob in image.blobs { XCTAssertEqual(try store.readAll(blob.sha256, verify: true), blob) }
        XCTAssertEqual(try store.tags("library/crash"), ["v1"])
        let check = try StoreChecker(store: store).check()
        XCTAssertTrue(check.isHealthy, "\(check)")
        var random = TestRandom(seed: 701)
        let next = random.bytes(1 << 20)
        XCTAssertEqual(try store.put(next).digest, next.sha256)
        XCTAssertEqual(try store.readAll(next.sha256, verify: true), next)
        _ = try GarbageCollector(store: store).collect()
        for blob in image.blobs { XCTAssertEqual(try store.readAll(blob.sha256, verify: true), blob) }
    }
}
