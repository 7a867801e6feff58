import BlobStore
import Foundation
import GC
import XCTest

/// A store on a file system that fills up: the put that does not fit fails with a clear
/// error, and everything committed before stays intact and readable.
final class FullDiskTests: XCTestCase {
    func testFullDiskFailsCleanlyAndLosesNothing() throws {
        guard getuid() == 0 else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("needs root to mount a small tmpfs") }
            throw XCTSkip("needs root to mount a small tmpfs")
        }
        let dir = try makeTemporaryDirectory(self)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=24m", "tmpfs", dir]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        defer {
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = [dir]
            try? u.run()
            u.waitUntilExit()
        }
        var random = TestRandom(seed: 7000)
        let kept = random.bytes(4 << 20)
        let big = random.bytes(40 << 20)
        do {
            let store = try Store.create(at: dir + "/s")
            _ = try store.put(kept)
            XCTAssertThrowsError(try store.put(big)) { error in
                let e = error as? BlobStoreError
                XCTAssertEqual(e?.code, .io)
                XCTAssertEqual(e?.errno, ENOSPC, "\(error)")
            }
            XCTAssertFalse(try store.contains(big.sha256))
            XCTAssertEqual(try store.readAll(kept.sha256, verify: true), kept)
            XCTAssertEqual(try store.totals().blobs, 1)
            XCTAssertEqual(try store.leases(), [], "the failed put's lease ended")
            let check = try StoreChecker(store: store).check()
            XCTAssertTrue(check.isHealthy, "\(check)")
            XCTAssertGreaterThan(check.unreferencedPackBytes, 0, "the failed put's bytes are reclaimable garbage")
            // The same process keeps working once space is back: no restart needed.
            _ = try store.remove(kept.sha256)
            _ = try GarbageCollector(store: store).collect()
            let small = random.bytes(1 << 20)
            XCTAssertEqual(try store.put(small).digest, small.sha256)
            XCTAssertEqual(try store.readAll(small.sha256, verify: true), small)
        }
        // A fresh open (as after a restart) finds a consistent store.
        do { // scoped: the store must be closed before the tmpfs is unmounted
            let reopened = try Store.open(at: dir + "/s")
            XCTAssertEqual(try reopened.totals().blobs, 1)
            XCTAssertTrue(try StoreChecker(store: reopened).check().isHealthy)
            try assertCountsConsistent(reopened)
        }
    }
}
