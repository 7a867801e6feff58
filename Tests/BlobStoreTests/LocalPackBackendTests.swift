import BlobStore
import Foundation
import XCTest

/// Pack locking: the rules that keep a collector in another process from removing or
/// compacting a pack that holds records the index does not point at yet. A second backend
/// on the same folder stands in for that process: `flock` locks belong to open files, so
/// two backends conflict exactly as two processes do.
final class LocalPackBackendTests: XCTestCase {
    private func records(_ random: inout TestRandom, count: Int, size: Int) -> ([[UInt8]], [PendingRecord]) {
        let payloads = (0..<count).map { _ in random.bytes(size) }
        let pending = payloads.map { p in
            p.withUnsafeBytes { raw in
                PendingRecord(key: p.sha256, flags: [], rawSize: UInt32(p.count), payload: raw, checksum: CRC32C.checksum(raw))
            }
        }
        return (payloads, pending)
    }

    func testANewPackIsLockedFromTheMomentItAppears() throws {
        let dir = try makeTemporaryDirectory(self)
        let writer = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        let collector = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        var random = TestRandom(seed: 5200)
        let (payloads, pending) = records(&random, count: 1, size: 1000)
        let unit = writer.beginWriting()
        let location = try withExtendedLifetime(payloads) { try writer.append(pending, for: unit)[0] }
        XCTAssertNil(try collector.claim(pack: location.packID), "the writer's current pack")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(names, [PackFormat.fileName(for: location.packID)], "no temporary name is left")
        writer.endWriting(unit)
        try writer.seal()
        XCTAssertNotNil(try collector.claim(pack: location.packID), "sealed and no writer left: claimable")
    }

    /// A unit of writing (an ingest, a compaction) that outlives a pack rotation keeps the
    /// earlier pack locked until it ends: its records there are not indexed yet.
    func testPacksAWriterAppendedToStayLockedAfterRotationUntilItEnds() throws {
        let dir = try makeTemporaryDirectory(self)
        let writer = LocalPackBackend(directory: dir, sizeLimit: 256 << 10)
        let collector = LocalPackBackend(directory: dir, sizeLimit: 256 << 10)
        var random = TestRandom(seed: 5201)
        let (payloads, pending) = records(&random, count: 12, size: 60_000)
        let unit = writer.beginWriting()
        let locations = try withExtendedLifetime(payloads) { try writer.append(pending, for: unit) }
        let packs = Set(locations.map(\.packID))
        XCTAssertGreaterThan(packs.count, 2, "the records span several packs")
        for id in packs {
            XCTAssertNil(try collector.claim(pack: id), "pack \(id) holds unindexed records of a running writer")
        }
        writer.endWriting(unit)
        let current = locations.last!.packID
        for id in packs where id != current {
            XCTAssertNotNil(try collector.claim(pack: id), "released once the writer ended")
        }
        XCTAssertNil(try collector.claim(pack: current), "still the current pack")
    }

    /// Removed packs' read handles are closed by `sweep`, so their space is freed.
    func testSweepClosesHandlesOfRemovedPacks() throws {
        let dir = try makeTemporaryDirectory(self)
        let writer = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        let reader = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        var random = TestRandom(seed: 5202)
        let (payloads, pending) = records(&random, count: 1, size: 1000)
        let unit = writer.beginWriting()
        let location = try withExtendedLifetime(payloads) { try writer.append(pending, for: unit)[0] }
        writer.endWriting(unit)
        try writer.seal()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        _ = try reader.read(pack: location.packID, at: location.offset, into: buffer)
        func openDescriptors() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).filter { name in
                ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + name)) ?? "").hasPrefix(dir)
            }.count
        }
        XCTAssertEqual(openDescriptors(), 1, "the reader's cached handle")
        try writer.remove(pack: location.packID)
        reader.sweep()
        XCTAssertEqual(openDescriptors(), 0, "closed after the pack was removed")
    }

    /// A frame's records land in one pack, back to back, even where a pack fills up: a
    /// frame cut between two packs could not be decoded.
    func testAFrameIsNeverSplitBetweenPacks() throws {
        let dir = try makeTemporaryDirectory(self)
        let writer = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        var random = TestRandom(seed: 5300)
        let (payloads, plain) = records(&random, count: 30, size: 100_000)
        // Frames of three records each (the payloads stand in for frame pieces).
        var pending: [PendingRecord] = []
        var back = 0
        for (i, var record) in plain.enumerated() {
            if i % 3 == 0 { back = 0 }
            record.flags = [.zstd, .settled, .framed]
            record.frameBack = UInt32(back)
            back += PackFormat.recordHeaderSize + record.payload.count
            pending.append(record)
        }
        let unit = writer.beginWriting()
        let locations = try withExtendedLifetime(payloads) { try writer.append(pending, for: unit) }
        writer.endWriting(unit)
        XCTAssertGreaterThan(Set(locations.map(\.packID)).count, 1, "the records fill several packs")
        for frame in stride(from: 0, to: locations.count, by: 3) {
            let members = locations[frame..<frame + 3]
            XCTAssertEqual(Set(members.map(\.packID)).count, 1, "frame \(frame / 3) spans packs")
            for m in members { XCTAssertEqual(m.frameStart, members.first!.offset) }
        }
    }
}
