import BlobStore
import Foundation
import GC
import XCTest

final class CompactionTests: XCTestCase {
    /// A store with small packs, most of whose content is then removed.
    func mostlyDeadStore(_ root: String, seed: UInt64) throws -> (keep: [[UInt8]], drop: [[UInt8]]) {
        let store = try Store.create(at: root, config: StoreConfig(packSizeLimit: 1 << 20))
        var random = TestRandom(seed: seed)
        var keep: [[UInt8]] = [], drop: [[UInt8]] = []
        for i in 0..<24 {
            let data = random.bytes(300_000)
            _ = try store.put(data)
            if i % 4 == 0 { keep.append(data) } else { drop.append(data) }
        }
        for d in drop { _ = try store.remove(d.sha256) }
        try store.close()
        return (keep, drop)
    }

    func testCompactionReclaimsDeadBytesAndKeepsLiveData() throws {
        let dir = try makeTemporaryDirectory(self)
        let (keep, _) = try mostlyDeadStore(dir + "/s", seed: 4200)
        let store = try Store.open(at: dir + "/s")
        let before = try store.packUsage()
        let dry = try GarbageCollector(store: store).collect(dryRun: true)
        let report = try GarbageCollector(store: store).collect()
        XCTAssertEqual(report.packsCompacted, dry.packsCompacted)
        XCTAssertGreaterThan(report.packsCompacted + report.packsRemoved, 0)
        let after = try store.packUsage()
        XCTAssertLessThan(after.bytes, before.bytes / 2, "most pack bytes were dead")
        for d in keep { XCTAssertEqual(try store.readAll(d.sha256, verify: true), d) }
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }

    /// `blobctl gc` killed at many points — mid-collection, mid-compaction, between the
    /// index switch and the unlink — always leaves a store that fsck passes and that holds
    /// every live blob; a later gc finishes the job.
    func testKillDuringGCAndCompactionLeavesAConsistentStore() throws {
        let dir = try makeTemporaryDirectory(self)
        for round in 0..<12 {
            let root = dir + "/s\(round)"
            let (keep, _) = try mostlyDeadStore(root, seed: 4300 + UInt64(round))
            let gc = Process()
            gc.executableURL = URL(fileURLWithPath: try blobctlPath())
            gc.arguments = ["--store", root, "gc"]
            gc.standardOutput = FileHandle.nullDevice
            gc.standardError = FileHandle.nullDevice
            try gc.run()
            usleep(UInt32(3_000 + round * 2_500)) // gc takes ~20 ms here: the kills land all through it
            kill(gc.processIdentifier, SIGKILL)
            gc.waitUntilExit()
            let store = try Store.open(at: root)
            for d in keep { XCTAssertEqual(try store.readAll(d.sha256, verify: true), d, "round \(round)") }
            let check = try StoreChecker(store: store).check()
            XCTAssertTrue(check.isHealthy, "round \(round): \(check)")
            _ = try GarbageCollector(store: store).collect()
            for d in keep { XCTAssertEqual(try store.readAll(d.sha256, verify: true), d) }
            try assertCountsConsistent(store)
            XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        }
    }

    /// Other processes put blobs that share chunks with garbage while gc runs again and
    /// again: every put succeeds and reads back.
    func testGCWhileOtherProcessesIngestLosesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        let store = try Store.create(at: root, config: StoreConfig(packSizeLimit: 2 << 20))
        var random = TestRandom(seed: 4400)
        let shared = random.bytes(1 << 20)
        var files: [(String, [UInt8])] = []
        for i in 0..<16 {
            let data = shared + random.bytes(150_000)
            let path = dir + "/f\(i)"
            FileManager.default.createFile(atPath: path, contents: Data(data))
            files.append((path, data))
        }
        for iteration in 0..<8 {
            // Garbage that shares chunks with what is about to be put.
            _ = try store.put(shared + random.bytes(50_000))
            for blob in try store.list() { _ = try store.remove(blob.digest) }
            let batch = Array(files[(iteration * 2) % files.count..<(iteration * 2) % files.count + 2])
            let procs = try batch.map { (path, _) -> Process in
                let p = Process()
                p.executableURL = URL(fileURLWithPath: try blobctlPath())
                p.arguments = ["--store", root, "put", path]
                p.standardOutput = FileHandle.nullDevice
                try p.run()
                return p
            }
            while procs.contains(where: { $0.isRunning }) { _ = try GarbageCollector(store: store).collect() }
            for p in procs { XCTAssertEqual(p.terminationStatus, 0) }
            for (_, data) in batch { XCTAssertEqual(try store.readAll(data.sha256, verify: true), data, "iteration \(iteration)") }
        }
        _ = try GarbageCollector(store: store).collect()
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }

    /// A reader in the middle of a blob while compaction moves its chunks and unlinks the
    /// old pack — here in another process — gets every byte right, and so does a reader
    /// in this process that still has the old pack open.
    func testReaderMidBlobWhileCompactionMovesItsChunks() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        let (keep, _) = try mostlyDeadStore(root, seed: 4500)
        var random = TestRandom(seed: 4501)
        let store = try Store.open(at: root)
        let big = random.bytes(3 << 20)
        _ = try store.put(big)
        try store.close()
        let packsBefore = Set(try store.allPackStats().keys)
        for data in keep + [big] {
            let stream = try BlobStream(store: store, digest: data.sha256, batchBytes: 64 << 10)
            var read: [UInt8] = []
            _ = try stream.next { read += $0 } // the first batch comes from the old packs
            let r = try runBlobctl(["--store", root, "gc", "--compact-threshold", "0.1"])
            XCTAssertEqual(r.status, 0, r.stderr)
            while try stream.next({ read += $0 }) {}
            XCTAssertEqual(read, data)
        }
        XCTAssertFalse(packsBefore.isSubset(of: Set(try store.allPackStats().keys)), "compaction replaced packs")
        for data in keep + [big] { XCTAssertEqual(try store.readAll(data.sha256, verify: true), data) }
    }
    /// A writer killed mid-append leaves a torn record at a pack's end; the next process
    /// adopts that pack and appends after it. Compaction of the pack must move the records
    /// appended after the torn one, not drop them with the pack (seen in the crash-and-race
    /// harness as a blob's first chunk lost with its pack).
    func testCompactionKeepsRecordsAppendedAfterATornTail() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 4600)
        let doomed = random.bytes(300_000), survivor = random.bytes(20_000)
        var store = try Store.create(at: root, config: StoreConfig(packSizeLimit: 2 << 20))
        _ = try store.put(doomed)
        try store.close()
        let packs = try store.allPackStats().keys
        XCTAssertEqual(packs.count, 1)
        let pack = packs.first!
        // What reached the disk of a record that was to carry 10,000 bytes.
        var header = [UInt8](repeating: 0, count: PackFormat.recordHeaderSize)
        header.withUnsafeMutableBytes {
            PackFormat.writeRecordHeader(into: $0.baseAddress!, key: Array("torn".utf8).sha256, flags: [], rawSize: 10_000,
                                         storedSize: 10_000, checksum: 1)
        }
        let file = try XCTUnwrap(Foundation.FileHandle(forWritingAtPath: root + "/packs/" + PackFormat.fileName(for: pack)))
        file.seekToEndOfFile()
        file.write(Data(header + random.bytes(2_000)))
        file.closeFile()

        store = try Store.open(at: root)
        _ = try store.put(survivor) // adopts the pack: its record lands inside the torn one's promised length
        XCTAssertEqual(try store.allPackStats().keys.count, 1, "the survivor went into the adopted pack")
        _ = try store.remove(doomed.sha256)
        try store.close()

        store = try Store.open(at: root)
        _ = try GarbageCollector(store: store, compactionThreshold: 0.1).collect()
        XCTAssertEqual(try store.readAll(survivor.sha256, verify: true), survivor)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try assertCountsConsistent(store)
    }

    /// A pack holding a live record whose bytes went bad is not compacted: its scan cannot
    /// account for every chunk the index counts in it, and unlinking it would turn one
    /// damaged chunk into a missing pack (and take any salvageable bytes with it).
    func testCompactionLeavesAPackWithAnUnreadableLiveRecord() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 4700)
        let dead = random.bytes(300_000), live = random.bytes(20_000)
        var store = try Store.create(at: root, config: StoreConfig(packSizeLimit: 2 << 20))
        _ = try store.put(dead)
        _ = try store.put(live)
        _ = try store.remove(dead.sha256)
        try store.close() // so the pack is no longer this process's to append to
        store = try Store.open(at: root)
        let pack = try XCTUnwrap(try store.allPackStats().keys.first)
        let path = root + "/packs/" + PackFormat.fileName(for: pack)
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let file = try XCTUnwrap(Foundation.FileHandle(forUpdatingAtPath: path))
        file.seek(toFileOffset: UInt64(size - 100)) // inside the live blob's payload
        let byte = try XCTUnwrap(file.readData(ofLength: 1).first)
        file.seek(toFileOffset: UInt64(size - 100))
        file.write(Data([~byte]))
        file.closeFile()

        let report = try GarbageCollector(store: store, compactionThreshold: 0.1).collect()
        XCTAssertEqual(report.packsCompacted, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "the pack is still there for fsck to report")
        XCTAssertFalse(try StoreChecker(store: store).check().corrupt.isEmpty)
    }
}
