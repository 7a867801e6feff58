import BlobStore
import Foundation
import GC
import XCTest

final class SettlerTests: XCTestCase {
    /// A store that ingests at zstd level 1 into 1 MiB packs, with text-like blobs, one
    /// incompressible blob, and one removed blob (dead bytes in a pack).
    func fastTierStore(_ root: String, seed: UInt64) throws -> (store: Store, kept: [[UInt8]]) {
        let store = try Store.create(at: root, config: StoreConfig(compressionLevel: 1, settledLevel: 19, packSizeLimit: 1 << 20))
        var random = TestRandom(seed: seed)
        var kept: [[UInt8]] = []
        for _ in 0..<8 { kept.append(random.text(500_000)) }
        kept.append(random.bytes(300_000))
        for blob in kept { _ = try store.put(blob) }
        let removed = random.text(400_000)
        _ = try store.put(removed)
        _ = try store.remove(removed.sha256)
        _ = try GarbageCollector(store: store, compactionThreshold: 1).collect()
        return (store, kept)
    }

    func testSettlingShrinksThePacksAndKeepsEveryBlob() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, kept) = try fastTierStore(dir + "/s", seed: 9100)
        let before = try store.totals().storedBytes
        let settler = Settler(store: store)
        XCTAssertFalse(try settler.candidates().isEmpty)
        let report = try settler.settle()
        XCTAssertGreaterThan(report.packsSettled, 0)
        XCTAssertEqual(report.packsSkipped, 0)
        XCTAssertLessThan(report.bytesAfter, report.bytesBefore)
        for blob in kept { XCTAssertEqual(try store.readAll(blob.sha256, verify: true), blob) }
        // Every chunk is settled, and the stored total is what the records now take.
        let chunks = try store.chunkRecords()
        XCTAssertTrue(chunks.values.allSatisfy { $0.location.flags.contains(.settled) })
        let stored = chunks.values.reduce(UInt64(0)) { $0 + $1.location.recordSize }
        XCTAssertEqual(try store.totals().storedBytes, stored)
        XCTAssertEqual(stored, before - (report.bytesBefore - report.bytesAfter))
        // The incompressible blob's chunks stay raw; settled is settled: a second run
        // finds nothing to do.
        XCTAssertTrue(chunks.values.contains { !$0.location.flags.contains(.zstd) })
        XCTAssertEqual(try settler.candidates(), [])
        XCTAssertEqual(try settler.settle().packsSettled, 0)
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        // A chunk ingested again after settling is found, not stored twice.
        let again = try store.put(kept[0])
        XCTAssertTrue(again.alreadyPresent)
    }

    /// A damaged record is never rewritten: its pack is left as it is (so fsck still
    /// reports the damage), and the other packs are settled.
    func testADamagedPackIsLeftAloneForFsck() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, text) = try fastTierStore(dir + "/s", seed: 9200)
        // More packs: incompressible blobs fill 1 MiB packs fast.
        var random = TestRandom(seed: 9201)
        let noise = (0..<3).map { _ in random.bytes(900_000) }
        for blob in noise { _ = try store.put(blob) }
        let kept = text + noise
        let victim = try XCTUnwrap(try store.chunkRecords().values.first { $0.location.flags.contains(.zstd) }).location
        let path = dir + "/s/packs/" + PackFormat.fileName(for: victim.packID)
        let handle = try Foundation.FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: victim.offset + UInt64(PackFormat.recordHeaderSize) + UInt64(victim.storedSize / 2))
        let byte = try XCTUnwrap(try handle.read(upToCount: 1))
        try handle.seek(toOffset: victim.offset + UInt64(PackFormat.recordHeaderSize) + UInt64(victim.storedSize / 2))
        try handle.write(contentsOf: Data([byte[0] ^ 0x5A]))
        try handle.close()

        let report = try Settler(store: store).settle()
        XCTAssertEqual(report.packsSkipped, 1, "the damaged pack")
        XCTAssertGreaterThan(report.packsSettled, 0, "the others")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertFalse(try StoreChecker(store: store).check().isHealthy, "the damage is still there to find")
        let unreadable = kept.filter { (try? store.readAll($0.sha256, verify: true)) != $0 }
        XCTAssertEqual(unreadable.count, 1, "only the blob holding the damaged chunk")
    }

    /// `blobctl settle` SIGKILLed at many instants: every blob reads back, fsck passes, and
    /// a later run finishes the job.
    func testKillDuringSettlingLosesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        for round in 0..<8 {
            let root = dir + "/s\(round)"
            let (store, kept) = try fastTierStore(root, seed: 9300 + UInt64(round))
            try store.close()
            let settle = Process()
            settle.executableURL = URL(fileURLWithPath: try blobctlPath())
            settle.arguments = ["--store", root, "settle", "--full-speed"]
            settle.standardOutput = FileHandle.nullDevice
            settle.standardError = FileHandle.nullDevice
            try settle.run()
            usleep(UInt32(20_000 + round * 60_000)) // a run takes ~0.5 s here
            kill(settle.processIdentifier, SIGKILL)
            settle.waitUntilExit()
            let reopened = try Store.open(at: root)
            for blob in kept { XCTAssertEqual(try reopened.readAll(blob.sha256, verify: true), blob, "round \(round)") }
            let check = try StoreChecker(store: reopened).check()
            XCTAssertTrue(check.isHealthy, "round \(round): \(check)")
            _ = try Settler(store: reopened).settle()
            _ = try GarbageCollector(store: reopened).collect()
            XCTAssertEqual(try Settler(store: reopened).candidates(), [])
            for blob in kept { XCTAssertEqual(try reopened.readAll(blob.sha256, verify: true), blob) }
            try assertCountsConsistent(reopened)
            XCTAssertTrue(try StoreChecker(store: reopened).check().isHealthy)
            try reopened.close()
        }
    }

    func testTheCommandReportsInJSON() throws {
        let dir = try makeTemporaryDirectory(self)
        let (store, _) = try fastTierStore(dir + "/s", seed: 9400)
        try store.close()
        let dry = try runBlobctl(["--store", dir + "/s", "settle", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.hasPrefix("would settle "), dry.stdout)
        let run = try runBlobctl(["--store", dir + "/s", "settle", "--json", "--level", "9"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONDecoder().decode(Settler.Report.self, from: Data(run.stdout.utf8))
        XCTAssertGreaterThan(report.packsSettled, 0)
        XCTAssertLessThan(report.bytesAfter, report.bytesBefore)
        let bad = try runBlobctl(["--store", dir + "/s", "settle", "--level", "25"])
        XCTAssertEqual(bad.status, 2, "a usage error: \(bad.stderr)")
    }
}
