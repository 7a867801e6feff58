import BlobStore
import Foundation
import GC
import XCTest

final class FsckTests: XCTestCase {
    func testHealthyStorePasses() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 4100)
        for _ in 0..<5 { _ = try store.put(random.bytes(500_000)) }
        let report = try StoreChecker(store: store).check()
        XCTAssertTrue(report.isHealthy, "\(report)")
        XCTAssertEqual(report.blobs, 5)
        XCTAssertEqual(report.packRecords, report.chunks)
    }

    func testWrongCountsAreFoundAndRepaired() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 4101)
        let data = random.bytes(1 << 20)
        let digest = try store.put(data).digest
        // Damage the index the way a bug would: a count off by one.
        try store.index.write { txn in
            var blob = try XCTUnwrap(Store.blob(txn, digest))
            blob.references = 3
            try txn.put("blobs", digest.key, blob.encoded())
        }
        let report = try StoreChecker(store: store).check()
        XCTAssertFalse(report.isHealthy)
        XCTAssertEqual(report.countMismatches.count, 1)
        XCTAssertTrue(report.countMismatches[0].contains(digest.description))
        let repaired = try StoreChecker(store: store).check(repair: true)
        XCTAssertFalse(repaired.repaired.isEmpty)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        XCTAssertEqual(try store.stat(digest).references, 0)
    }

    func testLostChunkRecordIsRebuiltFromThePacks() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 4102)
        let data = random.bytes(1 << 20)
        let digest = try store.put(data).digest
        let victim = try store.blobRecord(digest).chunks[2]
        try store.index.write { txn in _ = try txn.delete("chunks", victim.key) }
        XCTAssertThrowsError(try store.readAll(digest))
        let report = try StoreChecker(store: store).check()
        XCTAssertEqual(report.missing.count, 1)
        _ = try StoreChecker(store: store).check(repair: true)
        XCTAssertEqual(try store.readAll(digest, verify: true), data)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }

    func testCorruptChunkIsReported() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 4103)
        let digest = try store.put(random.text(1 << 20)).digest
        let key = try store.blobRecord(digest).chunks[0]
        let location = try XCTUnwrap(store.chunkRecords()[key]).location
        let path = store.root + "/packs/" + PackFormat.fileName(for: location.packID)
        let handle = try XCTUnwrap(Foundation.FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: location.offset + 100)
        try handle.write(contentsOf: [0xAA, 0xBB])
        try handle.close()
        let report = try StoreChecker(store: store).check()
        XCTAssertFalse(report.isHealthy)
        XCTAssertEqual(report.corrupt.count, 1)
        XCTAssertEqual(report.damagedPackRecords, 1)
    }

    /// `fsck --repair` while another process commits blobs: what it commits during the
    /// long hashing phase keeps its counts, so a collection afterwards frees none of it.
    func testRepairRacingAWriterLosesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        let store = try Store.create(at: root)
        var random = TestRandom(seed: 4104)
        for _ in 0..<24 { _ = try store.put(random.bytes(8 << 20)) } // hashing takes a while
        var inputs: [String] = []
        for i in 0..<40 {
            let path = dir + "/in-\(i)"
            FileManager.default.createFile(atPath: path, contents: Data(random.bytes(300_000 + i * 997)))
            inputs.append(path)
        }
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "for f in \"$@\"; do \"\(try blobctlPath())\" --store \(root) put \"$f\" || exit 1; sleep 0.02; done", "sh"] + inputs
        writer.standardOutput = FileHandle.nullDevice
        try writer.run()
        var repairs = 0
        while writer.isRunning {
            _ = try StoreChecker(store: store).check(repair: true)
            repairs += 1
        }
        writer.waitUntilExit()
        XCTAssertEqual(writer.terminationStatus, 0)
        XCTAssertGreaterThan(repairs, 0)
        _ = try GarbageCollector(store: store).collect()
        for path in inputs {
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertEqual(try store.readAll(data.sha256, verify: true), data, path)
        }
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try assertCountsConsistent(store)
    }
}
