import BlobStore
import GC
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A real containerd (started by hand, its built-in content store disabled) using
/// `blobctl containerd-proxy` as its content store.
final class ContainerdContentTests: XCTestCase {
    /// `ctr images import` writes an image through the proxy; containerd reads it back
    /// byte-exact and sees only its own blobs: a layer already in the store (as if pushed to
    /// the registry) is stored once; when the image is removed, containerd's GC deletes its
    /// blobs from its view and the store keeps the layer for its other holder while what
    /// only containerd held is freed; blobs containerd never wrote are not listed, so its
    /// GC cannot delete them.
    func testContainerdUsesTheStoreAsItsContentStore() throws {
        let dir = try makeTemporaryDirectory(self)
        let storePath = dir + "/store"
        var random = TestRandom(seed: 9300)
        let sharedLayer = try ImageFixture.layer([("srv/big", random.bytes(3_000_000))])
        let ownLayer = try ImageFixture.layer([("srv/own", random.bytes(2_000_000))])
        let foreign = random.bytes(500_000)
        let image = ImageFixture(layers: [sharedLayer, ownLayer], label: "containerd")
        try image.writeLayout(dir + "/layout", tag: "v1")
        XCTAssertEqual(try runTool("/bin/tar", ["-C", dir + "/layout", "-cf", dir + "/image.tar", "."]).status, 0)
        for (name, bytes) in [("shared", sharedLayer), ("foreign", foreign)] {
            FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(bytes))
            XCTAssertEqual(try runBlobctl(["--store", storePath, "put", dir + "/" + name]).status, 0)
        }
        func stored() throws -> Int {
            let df = try runBlobctl(["--store", storePath, "df", "--json"])
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any])?["storedBytes"] as? Int)
        }
        let before = try stored()
        let containerd = try ContainerdProcess(self, store: storePath)

        let imported = try containerd.ctr(["images", "import", "--base-name", "example.org/app", "--no-unpack", dir + "/image.tar"])
        XCTAssertEqual(imported.status, 0, imported.stderr + containerd.log("proxy.log"))
        XCTAssertTrue(try containerd.ctr(["images", "ls", "-q"]).stdout.contains("example.org/app:v1"))
        let get = try runTool("/bin/sh", ["-c", "exec ctr --address '\(containerd.socket)' content get \(ownLayer.sha256) > '\(dir)/own.out'"])
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/own.out").map(Array.init), ownLayer)
        XCTAssertLessThan(try stored() - before, ownLayer.count + 100_000, "the shared layer was not stored again")
        let store = try Store.open(at: storePath)
        let claimed = Set(try store.claims(by: "containerd").map(\.digest))
        XCTAssertTrue(claimed.isSuperset(of: [sharedLayer.sha256, ownLayer.sha256, image.config.sha256, image.manifestDigest]), "\(claimed)")
        XCTAssertFalse(claimed.contains(foreign.sha256), "containerd never wrote it")

        // A write whose bytes are not the digest it promised stores and claims nothing.
        let wrong = try containerd.ctr(["content", "ingest", "--expected-size", "\(foreign.count)", "--expected-digest", "\(Array("other bytes".utf8).sha256)", "bad"],
                                       input: dir + "/foreign")
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("digest mismatch"), wrong.stderr)

        // The image removed, containerd's GC deletes its blobs: the claims go.
        XCTAssertEqual(try containerd.ctr(["images", "rm", "example.org/app:v1"]).status, 0)
        guard try containerd.waitForGC(timeout: 20, until: { try store.claims(by: "containerd").isEmpty }) else {
            return XCTFail("\(containerd.log("containerd.log").suffix(2000))\ncontainerd's GC did not drop its claims")
        }
        XCTAssertEqual(try runBlobctl(["--store", storePath, "gc"]).status, 0)
        XCTAssertEqual(try store.readAll(sharedLayer.sha256), sharedLayer, "blobctl's pin still holds it")
        XCTAssertEqual(try store.readAll(foreign.sha256), foreign, "containerd's GC never saw it")
        XCTAssertFalse(try store.contains(ownLayer.sha256), "only containerd held it")
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try store.close()
    }

    /// A blob far bigger than one stream's worth of containerd's bandwidth probes (a PING
    /// per answer): written and read back whole. Before the proxy answered PINGs itself,
    /// swift-nio-http2's PING limit closed the connection after about 100 MB.
    func testBigBlobsGoThroughTheProxy() throws {
        let dir = try makeTemporaryDirectory(self)
        let containerd = try ContainerdProcess(self, store: dir + "/store")
        let made = try runTool("/bin/sh", ["-c", "head -c 150000000 /dev/urandom > '\(dir)/big' && sha256sum '\(dir)/big'"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let digest = "sha256:" + made.stdout.prefix(64)
        let ingest = try containerd.ctr(["content", "ingest", "--expected-size", "150000000", "--expected-digest", digest, "big"], input: dir + "/big")
        XCTAssertEqual(ingest.status, 0, ingest.stderr)
        // Labeled as a root, or containerd's GC would collect it at once.
        XCTAssertEqual(try containerd.ctr(["content", "label", digest, "containerd.io/gc.root=test"]).status, 0)
        let get = try runTool("/bin/sh", ["-c", "ctr --address '\(containerd.socket)' content get \(digest) | sha256sum"], timeout: 120)
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertEqual("sha256:" + get.stdout.prefix(64), digest)
    }
}
