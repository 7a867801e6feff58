import BlobStore
import Foundation
import XCTest

final class RegistrySettlingTests: XCTestCase {
    /// Pushed at the fast level, a blob's chunks are rewritten at the settled level once
    /// the registry has been idle, and it pulls back byte-exact; while a client keeps
    /// asking, nothing is settled.
    func testAnIdleRegistrySettlesWhatWasPushed() throws {
        let registry = try RegistryProcess(self, arguments: ["--settle-idle", "2", "--gc-interval", "0"])
        var random = TestRandom(seed: 7700)
        let blob = random.text(3_000_000)
        try registry.pushBlob("app", blob)
        let store = try Store.open(at: registry.storePath)
        defer { try? store.close() }
        func settledShare() throws -> Double {
            let chunks = try store.chunkRecords().values
            return Double(chunks.filter { $0.location.flags.contains(.settled) }.count) / Double(max(chunks.count, 1))
        }
        // Busy: a request every 300 ms for 4 s.
        for _ in 0..<13 {
            XCTAssertEqual(try registry.request("GET", "/v2/").status, 200)
            usleep(300_000)
        }
        XCTAssertEqual(try settledShare(), 0, "settled while a client was active")
        let storedBefore = try store.totals().storedBytes
        // Quiet: settled within seconds.
        let deadline = Date().addingTimeInterval(30)
        while try settledShare() < 1 {
            guard Date() < deadline else { return XCTFail("not settled after 30 s idle:\n\(registry.log())") }
            usleep(200_000)
        }
        XCTAssertLessThan(try store.totals().storedBytes, storedBefore)
        let pulled = try registry.request("GET", "/v2/app/blobs/\(blob.sha256)")
        XCTAssertEqual(pulled.status, 200)
        XCTAssertEqual(pulled.body, blob)
        XCTAssertTrue(registry.log().contains("settled packs"), registry.log())
        let metrics = try registry.request("GET", "/metrics")
        XCTAssertTrue(metrics.text.contains("blobstore_settle_bytes_saved_total"), metrics.text)
    }
}
