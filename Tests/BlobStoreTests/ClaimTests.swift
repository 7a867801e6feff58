import BlobStore
import Foundation
import GC
import XCTest

/// Claims: a named client's counted references with labels (containerd's view of the store).
final class ClaimTests: XCTestCase {
    private func putUnpinned(_ store: Store, _ bytes: [UInt8]) throws -> Digest {
        let session = try store.beginIngest()
        try session.append(bytes)
        return try session.commit(pin: false).digest
    }

    func testAClaimHoldsABlobAndDroppingItFreesOnlyWhatNothingElseHolds() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 9100)
        let alone = random.bytes(200_000), shared = random.bytes(200_000)
        let a = try putUnpinned(store, alone)
        let b = try putUnpinned(store, shared)
        try store.claim(a, by: "containerd", labels: ["containerd.io/gc.root": "x"])
        try store.claim(b, by: "containerd")
        try store.claim(b, by: "other")
        XCTAssertEqual(try store.claim(a, by: "containerd").labels, ["containerd.io/gc.root": "x"], "claiming again keeps the labels")
        XCTAssertEqual(try store.claims(by: "containerd").map(\.digest).sorted { $0.description < $1.description },
                       [a, b].sorted { $0.description < $1.description })
        XCTAssertEqual(try store.claims(by: "other").map(\.digest), [b])
        XCTAssertEqual(try store.claims(by: "container").count, 0, "a holder name is not a prefix match")
        XCTAssertEqual(try store.relabelClaim(b, by: "containerd", labels: ["k": "v"]).labels, ["k": "v"])

        _ = try GarbageCollector(store: store).collect()
        XCTAssertTrue(try store.contains(a) && store.contains(b), "claimed blobs survive gc")
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)

        XCTAssertTrue(try store.unclaim(a, by: "containerd"))
        XCTAssertFalse(try store.unclaim(a, by: "containerd"), "a second drop finds nothing")
        XCTAssertTrue(try store.unclaim(b, by: "containerd"))
        _ = try GarbageCollector(store: store).collect()
        XCTAssertFalse(try store.contains(a), "nothing else held it")
        XCTAssertEqual(try store.readAll(b), shared, "\"other\" still holds it")
        XCTAssertThrowsError(try store.relabelClaim(a, by: "containerd", labels: [:]))
        XCTAssertThrowsError(try store.claim(Array("absent".utf8).sha256, by: "containerd"), "only stored blobs are claimed")
        try assertCountsConsistent(store)
    }
}
