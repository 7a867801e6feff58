import BlobStore
import XCTest

final class ResumableIngestTests: XCTestCase {
    func testCheckpointAndResumeInAnotherStoreInstance() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 900)
        let data = random.text(5 << 20) + random.bytes(3 << 20)
        let cut1 = 1_234_567, cut2 = 6_000_001
        do {
            let session = try store.beginIngest(reference: "upload-1")
            try session.append(Array(data[..<cut1]))
            try session.checkpoint()
            XCTAssertEqual(session.size, UInt64(cut1))
        }
        XCTAssertEqual(try store.ingestOffset(reference: "upload-1"), UInt64(cut1))
        XCTAssertThrowsError(try store.beginIngest(reference: "upload-1"), "a reference is taken once")
        do {
            let reopened = try Store.open(at: store.root)
            let session = try reopened.resumeIngest(reference: "upload-1")
            XCTAssertEqual(session.size, UInt64(cut1))
            try session.append(Array(data[cut1..<cut2]))
            try session.checkpoint()
        }
        let reopened = try Store.open(at: store.root)
        let session = try reopened.resumeIngest(reference: "upload-1")
        try session.append(Array(data[cut2...]))
        let result = try session.commit(expected: data.sha256)
        XCTAssertEqual(result.digest, data.sha256)
        XCTAssertEqual(try reopened.readAll(data.sha256, verify: true), data)
        XCTAssertThrowsError(try reopened.resumeIngest(reference: "upload-1"), "a committed ingest is gone")
        XCTAssertTrue(try reopened.leases().isEmpty)
        try assertCountsConsistent(reopened)

        // Resumed chunking cuts where a one-shot put cuts: the same blob dedups fully.
        let again = try reopened.put(data)
        XCTAssertTrue(again.alreadyPresent)
    }

    func testAbortDropsEverything() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 901)
        let session = try store.beginIngest(reference: "upload-2")
        try session.append(random.bytes(3 << 20))
        try session.checkpoint()
        try store.abortIngest(reference: "upload-2")
        XCTAssertThrowsError(try store.ingestOffset(reference: "upload-2"))
        XCTAssertTrue(try store.leases().isEmpty)
        XCTAssertEqual(try store.totals().blobs, 0)
    }
}
