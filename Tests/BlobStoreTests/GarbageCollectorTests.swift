import BlobStore
import Dispatch
import Foundation
import GC
import XCTest

final class GarbageCollectorTests: XCTestCase {
    func testRemoveThenCollectFreesOnlyExclusiveChunks() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 1000)
        let common = random.bytes(2 << 20)
        let a = common + random.bytes(1 << 20)
        let b = common + random.bytes(1 << 20)
        _ = try store.put(a)
        _ = try store.put(b)
        let chunksBefore = try store.totals().chunks
        let removed = try store.remove(a.sha256)
        XCTAssertTrue(removed.removed)
        XCTAssertGreaterThan(removed.chunksReleased, 0)
        XCTAssertThrowsError(try store.stat(a.sha256))

        let gc = GarbageCollector(store: store)
        let dry = try gc.collect(dryRun: true)
        XCTAssertTrue(dry.dryRun)
        XCTAssertEqual(try store.totals().chunks, chunksBefore, "a dry run changes nothing")
        let real = try gc.collect()
        XCTAssertEqual(real.chunksFreed, dry.chunksFreed, "the dry run predicts the real run")
        XCTAssertEqual(real.bytesFreed, dry.bytesFreed)
        XCTAssertEqual(real.chunksFreed, removed.chunksReleased)
        XCTAssertEqual(try store.totals().chunks, chunksBefore - UInt64(real.chunksFreed))
        XCTAssertEqual(try store.readAll(b.sha256, verify: true), b, "the other blob is intact")
        try assertCountsConsistent(store)
        XCTAssertEqual(try gc.collect().chunksFreed, 0, "a second run finds nothing")
    }

    func testEmptyPackIsRemoved() throws {
        let dir = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 1001)
        let data = random.bytes(1 << 20)
        do {
            let store = try Store.create(at: dir + "/s")
            _ = try store.put(data)
            try store.close()
        }
        let store = try Store.open(at: dir + "/s")
        _ = try store.remove(data.sha256)
        let report = try GarbageCollector(store: store).collect()
        XCTAssertEqual(report.packsRemoved, 1)
        XCTAssertEqual(try store.packUsage().count, 0)
        XCTAssertEqual(try store.totals(), StoreTotals())
    }

    /// Puts and removals of blobs that share chunks from two threads, while another process
    /// collects and compacts in a loop: nothing committed is lost.
    func testCollectionRacingIngestsLosesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        _ = try Store.create(at: root)
        var seedRandom = TestRandom(seed: 1003)
        let shared = seedRandom.bytes(1 << 20)
        let stop = UncheckedBox(false)
        let failures = UncheckedBox<[String]>([])
        let lock = NSLock()
        let kept = UncheckedBox<[[UInt8]]>([])
        let group = DispatchGroup()
        for worker in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let store = try Store.open(at: root)
                    var r = TestRandom(seed: 2000 + UInt64(worker))
                    for i in 0..<25 {
                        let data = shared + r.bytes(200_000 + i * 1000)
                        _ = try store.put(data)
                        if i % 2 == 0 {
                            _ = try store.remove(data.sha256)
                        } else {
                            lock.lock(); kept.value.append(data); lock.unlock()
                        }
                    }
                } catch {
                    lock.lock(); failures.value.append("\(error)"); lock.unlock()
                }
            }
        }
        let collectorDone = DispatchSemaphore(value: 0)
        let collector = Thread {
            defer { collectorDone.signal() }
            while !lock.withLock({ stop.value }) {
                do {
                    let r = try runBlobctl(["--store", root, "gc", "--compact-threshold", "0.1"])
                    if r.status != 0 { lock.lock(); failures.value.append("gc: \(r.stderr)"); lock.unlock() }
                } catch {
                    lock.lock(); failures.value.append("gc: \(error)"); lock.unlock()
                }
            }
        }
        collector.start()
        group.wait()
        lock.withLock { stop.value = true }
        collectorDone.wait()
        XCTAssertEqual(failures.value, [])
        let store = try Store.open(at: root)
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.list().count, kept.value.count)
        for data in kept.value { XCTAssertEqual(try store.readAll(data.sha256, verify: true), data) }
        try assertCountsConsistent(store)
    }
}
