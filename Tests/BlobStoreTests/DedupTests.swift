import BlobStore
import XCTest

final class DedupTests: XCTestCase {
    func testIdenticalBlobWritesNoPackBytes() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 200)
        let data = random.bytes(5 << 20)
        let first = try store.put(data)
        let packBytes = try store.packUsage().bytes
        let second = try store.put(data)
        XCTAssertTrue(second.alreadyPresent)
        XCTAssertEqual(second.storedBytes, 0)
        XCTAssertEqual(second.digest, first.digest)
        XCTAssertEqual(try store.packUsage().bytes, packBytes, "a blob already present adds no pack bytes")
        XCTAssertEqual(try store.totals().blobs, 1)
        try assertCountsConsistent(store)
    }

    func testSimilarBlobStoresOnlyTheChangedChunks() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 201)
        let v1 = random.bytes(8 << 20)
        var v2 = v1
        v2.replaceSubrange(4_000_000..<4_000_010, with: random.bytes(300))
        v2.append(contentsOf: random.bytes(1000))
        let a = try store.put(v1)
        let b = try store.put(v2)
        XCTAssertFalse(b.alreadyPresent)
        XCTAssertLessThan(b.newChunks, 6, "only chunks around the edits are new")
        XCTAssertLessThan(b.storedBytes, UInt64(a.storedBytes / 10), "the similar blob costs a fraction of the first")
        XCTAssertEqual(try store.readAll(b.digest), v2)
        XCTAssertEqual(try store.readAll(a.digest), v1)
        let totals = try store.totals()
        XCTAssertLessThan(totals.uniqueBytes, UInt64(v1.count + v1.count / 8))
        try assertCountsConsistent(store)
    }

    func testRepeatedContentInsideOneBlobIsStoredOnce() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 202)
        let block = random.bytes(2 << 20)
        let data = block + block + block
        let result = try store.put(data)
        XCTAssertLessThan(result.storedBytes, UInt64(Double(block.count) * 1.2))
        XCTAssertEqual(try store.readAll(result.digest), data)
        try assertCountsConsistent(store)
    }

    func testCompressibleDataIsCompressed() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 203)
        let data = random.text(4 << 20)
        let result = try store.put(data)
        XCTAssertLessThan(result.storedBytes, UInt64(data.count / 2))
    }
}
