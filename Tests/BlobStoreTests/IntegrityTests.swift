import BlobStore
import Foundation
import XCTest

final class IntegrityTests: XCTestCase {
    /// Overwrites bytes of a pack file in place.
    func patchPack(_ store: Store, _ location: ChunkLocation, at offset: UInt64, with bytes: [UInt8]) throws {
        let path = store.root + "/packs/" + PackFormat.fileName(for: location.packID)
        let handle = try XCTUnwrap(Foundation.FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: location.offset + offset)
        try handle.write(contentsOf: bytes)
        try handle.close()
    }

    func testWrongExpectedDigestStoresNothing() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 300)
        let keep = random.bytes(100_000)
        _ = try store.put(keep)
        let before = try store.totals()
        let data = random.bytes(3 << 20)
        let wrong = random.bytes(10).sha256
        XCTAssertThrowsError(try store.put(data, expected: wrong)) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .digestMismatch)
            XCTAssertTrue("\(error)".contains(wrong.description), "the error names the expected digest")
        }
        XCTAssertFalse(try store.contains(data.sha256))
        XCTAssertEqual(try store.totals(), before, "no count changed")
        XCTAssertEqual(try store.list().count, 1)
        XCTAssertTrue(try store.leases().isEmpty, "the ingest's lease is released")
        // The right digest is accepted afterwards.
        XCTAssertEqual(try store.put(data, expected: data.sha256).digest, data.sha256)
        try assertCountsConsistent(store)
    }

    func testCorruptPackByteIsAnErrorNamingBlobAndChunk() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 301)
        let data = random.text(2 << 20)
        let digest = try store.put(data).digest
        let record = try store.blobRecord(digest)
        let victim = record.chunks[3]
        let location = try XCTUnwrap(store.chunkRecords()[victim]).location
        try patchPack(store, location, at: UInt64(PackFormat.recordHeaderSize) + 10, with: [0xFF, 0x00, 0xFF])
        XCTAssertThrowsError(try store.readAll(digest)) { error in
            let e = error as? BlobStoreError
            XCTAssertEqual(e?.code, .corrupt)
            XCTAssertTrue(e?.message.contains(digest.description) ?? false, "names the blob: \(error)")
            XCTAssertTrue(e?.message.contains(victim.description) ?? false, "names the chunk: \(error)")
        }
        // Ranges that avoid the damaged chunk still read.
        var head: [UInt8] = []
        try store.read(digest, range: 0..<record.chunkEnds[2]) { head.append(contentsOf: $0) }
        XCTAssertEqual(head, Array(data[..<Int(record.chunkEnds[2])]))
    }

    func testDamagedRecordHeaderIsDetected() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 302)
        let digest = try store.put(random.bytes(200_000)).digest
        let key = try store.blobRecord(digest).chunks[0]
        let location = try XCTUnwrap(store.chunkRecords()[key]).location
        try patchPack(store, location, at: 20, with: [0x42])
        XCTAssertThrowsError(try store.readAll(digest)) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .corrupt)
        }
    }

    /// A payload rewritten together with its CRC passes the cheap check; full verification
    /// still refuses it.
    func testVerifyCatchesWhatTheChecksumCannot() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 303)
        let data = random.bytes(300_000) // random: stored raw
        let digest = try store.put(data).digest
        let key = try store.blobRecord(digest).chunks[0]
        let location = try XCTUnwrap(store.chunkRecords()[key]).location
        XCTAssertFalse(location.flags.contains(.zstd))
        let forged = random.bytes(Int(location.storedSize))
        try patchPack(store, location, at: UInt64(PackFormat.recordHeaderSize), with: forged)
        // Fix the payload CRC and then the header CRC, as a deliberate forgery would.
        let crc = CRC32C.checksum(forged)
        let path = store.root + "/packs/" + PackFormat.fileName(for: location.packID)
        let handle = try XCTUnwrap(Foundation.FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: location.offset)
        var header = [UInt8](try XCTUnwrap(handle.read(upToCount: 64)))
        withUnsafeBytes(of: crc.littleEndian) { header.replaceSubrange(48..<52, with: $0) }
        let headerCRC = CRC32C.checksum(Array(header[..<60]))
        withUnsafeBytes(of: headerCRC.littleEndian) { header.replaceSubrange(60..<64, with: $0) }
        try handle.seek(toOffset: location.offset)
        try handle.write(contentsOf: header)
        try handle.close()
        XCTAssertThrowsError(try store.readAll(digest, verify: true)) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .corrupt)
            XCTAssertTrue("\(error)".contains("hashes to"), "\(error)")
        }
    }

    func testMissingPackIsAnError() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 304)
        let digest = try store.put(random.bytes(100_000)).digest
        let reopened = try Store.open(at: store.root)
        for name in try FileManager.default.contentsOfDirectory(atPath: store.root + "/packs") {
            try FileManager.default.removeItem(atPath: store.root + "/packs/" + name)
        }
        XCTAssertThrowsError(try reopened.readAll(digest)) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .corrupt)
        }
    }
}
