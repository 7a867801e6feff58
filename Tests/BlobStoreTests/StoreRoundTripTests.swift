import BlobStore
import XCTest

final class StoreRoundTripTests: XCTestCase {
    func testRoundTripsOfManySizes() throws {
        let store = try makeStore(self)
        let p = store.config.chunking
        var random = TestRandom(seed: 100)
        let sizes = [0, 1, 2, 1000, p.minSize - 1, p.minSize, p.minSize + 1, p.averageSize, p.maxSize - 1, p.maxSize, p.maxSize + 1,
                     3 * p.maxSize, (8 << 20) - 1, 8 << 20, (8 << 20) + 1, 20 << 20 + 12345]
        for size in sizes {
            for data in [random.bytes(size), random.text(size)] {
                let result = try store.put(data)
                XCTAssertEqual(result.digest, data.sha256, "digest of \(size) bytes")
                XCTAssertEqual(result.size, UInt64(size))
                XCTAssertEqual(try store.readAll(result.digest), data, "read back \(size) bytes")
                XCTAssertEqual(try store.readAll(result.digest, verify: true), data)
                XCTAssertEqual(try store.stat(result.digest).size, UInt64(size))
            }
        }
        try assertCountsConsistent(store)
    }

    func testExactlyMaxChunkIsOneChunk() throws {
        let store = try makeStore(self)
        let data = [UInt8](repeating: 0x5A, count: store.config.chunking.maxSize)
        let result = try store.put(data)
        XCTAssertEqual(result.chunkCount, 1)
        XCTAssertEqual(try store.readAll(result.digest), data)
    }

    func testRangeReadsAcrossChunkBoundaries() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 101)
        let data = random.bytes(3 << 20)
        let digest = try store.put(data).digest
        let record = try store.blobRecord(digest)
        XCTAssertGreaterThan(record.chunkCount, 10)
        var ranges: [Range<UInt64>] = [0..<0, 0..<1, 0..<UInt64(data.count), UInt64(data.count - 1)..<UInt64(data.count)]
        // Around every one of the first boundaries: straddling, ending on, starting on.
        for end in record.chunkEnds.prefix(6) where end < UInt64(data.count) {
            ranges += [end - 1..<end + 1, end - 100..<end, end..<end + 100, end - 5000..<end + 70_000]
        }
        for _ in 0..<50 {
            let a = UInt64.random(in: 0..<UInt64(data.count))
            let b = UInt64.random(in: a...UInt64(data.count))
            ranges.append(a..<b)
        }
        for r in ranges {
            var got: [UInt8] = []
            try store.read(digest, range: r) { got.append(contentsOf: $0) }
            XCTAssertEqual(got, Array(data[Int(r.lowerBound)..<Int(r.upperBound)]), "range \(r)")
        }
        XCTAssertThrowsError(try store.read(digest, range: 0..<UInt64(data.count + 1)) { _ in })
    }

    func testReopenAfterCleanClose() throws {
        let dir = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 102)
        let data = random.bytes(1 << 20)
        let digest: Digest
        do {
            let store = try Store.create(at: dir + "/s")
            digest = try store.put(data).digest
            try store.close()
        }
        let reopened = try Store.open(at: dir + "/s")
        XCTAssertEqual(try reopened.readAll(digest), data)
        // A second writer adopts the unfinished pack instead of starting a new one.
        _ = try reopened.put(random.bytes(1000))
        XCTAssertEqual(try reopened.packUsage().count, 1)
    }

    func testConfigIsRecordedAndValidated() throws {
        let dir = try makeTemporaryDirectory(self)
        let config = StoreConfig(chunking: ChunkingParameters(minSize: 4096, averageSize: 16384, maxSize: 65536), compressionLevel: 7)
        _ = try Store.create(at: dir + "/s", config: config)
        let reopened = try Store.open(at: dir + "/s")
        XCTAssertEqual(reopened.config.chunking, config.chunking)
        XCTAssertEqual(reopened.config.compressionLevel, 7)
        XCTAssertThrowsError(try Store.create(at: dir + "/s")) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .alreadyExists)
        }
        XCTAssertThrowsError(try Store.create(at: dir + "/t", config: StoreConfig(compressionLevel: 40)))
        XCTAssertThrowsError(try Store.open(at: dir + "/nothing-here")) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .notFound)
        }
    }

    func testNewerFormatIsRefused() throws {
        let dir = try makeTemporaryDirectory(self)
        _ = try Store.create(at: dir + "/s")
        let path = dir + "/s/config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "\"formatVersion\" : 1", with: "\"formatVersion\" : 99").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Store.open(at: dir + "/s")) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .unsupportedFormat)
        }
    }

    func testUncompressedStoreKeepsChunksRaw() throws {
        let store = try makeStore(self, config: StoreConfig(compressionLevel: 0))
        var random = TestRandom(seed: 103)
        let data = random.text(1 << 20)
        let result = try store.put(data)
        XCTAssertGreaterThanOrEqual(result.storedBytes, UInt64(data.count))
        XCTAssertEqual(try store.readAll(result.digest), data)
    }
}
