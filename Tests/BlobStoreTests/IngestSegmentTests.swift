import BlobStore
import GC
import XCTest

/// Segments are hashed, looked up and compressed by jobs on all cores, several segments at
/// once: a chunk that repeats, in one job, across jobs or across segments in flight
/// together, is still written to a pack exactly once.
final class IngestSegmentTests: XCTestCase {
    func testChunksRepeatedAcrossSegmentsInFlightAreWrittenOnce() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 950)
        let blocks = (0..<5).map { _ in random.bytes(1_500_000) }
        // 28 blocks, 42 MB: five segments of 8 MiB; repeats next to each other (one job),
        // a few blocks apart (another job of the same segment) and segments apart.
        let order = [0, 0, 1, 2, 1, 3, 0, 4, 4, 4, 2, 1, 0, 3, 3, 2, 4, 1, 0, 2, 3, 4, 0, 1, 2, 3, 4, 0]
        let data = order.flatMap { blocks[$0] }
        let result = try store.put(data)
        XCTAssertEqual(try store.readAll(result.digest, verify: true), data)
        // Five blocks of chunks plus the chunks that straddle the 27 block boundaries.
        XCTAssertLessThan(result.storedBytes, UInt64(data.count / 3), "repeated blocks cost nothing more")
        let report = try StoreChecker(store: store).check()
        XCTAssertTrue(report.isHealthy, "\(report)")
        XCTAssertEqual(report.unreferencedPackBytes, 0, "no chunk was written twice")
        try assertCountsConsistent(store)
    }

    func testAResumedIngestDoesNotRewriteChunksItWroteBeforeItsCheckpoint() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 951)
        let block = random.bytes(3 << 20)
        do {
            let session = try store.beginIngest(reference: "upload-repeat")
            try session.append(block)
            try session.checkpoint()
        }
        let reopened = try Store.open(at: store.root)
        let session = try reopened.resumeIngest(reference: "upload-repeat")
        try session.append(block)
        try session.append(block)
        let data = block + block + block
        let result = try session.commit(expected: data.sha256)
        XCTAssertEqual(try reopened.readAll(result.digest, verify: true), data)
        let report = try StoreChecker(store: reopened).check()
        XCTAssertEqual(report.unreferencedPackBytes, 0, "chunks written before the checkpoint are not written again")
        try assertCountsConsistent(reopened)
    }
}
