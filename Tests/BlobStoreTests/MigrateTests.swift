import Foundation
import XCTest

/// `blobctl migrate`: an embedded store into a cluster (PostgreSQL + Ceph) and back, each
/// copy verified and then used, with what a user checks: every blob byte-exact, images,
/// containers and volumes there, counts that let `gc` and `fsck` work on the copy.
/// (An extension of the cluster tests, so it shares their Ceph.)
extension ClusterObjectStorageTests {
    func testMigrateMovesAnEmbeddedStoreIntoTheClusterAndBack() throws {
        let dir = try makeTemporaryDirectory(self)
        let embedded = dir + "/embedded"
        func blobctl(_ args: [String]) throws -> CommandResult { try runBlobctl(args) }
        func ok(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
            let r = try blobctl(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)", file: file, line: line)
            return r.stdout
        }

        // An embedded store with some of everything: an image with a container, a volume,
        // blobs sharing chunks, garbage collected once, settled (framed) packs.
        XCTAssertEqual(try blobctl(["--store", embedded, "init", "--avg-chunk", "16384", "--min-chunk", "4096", "--max-chunk", "65536"]).status, 0)
        var random = TestRandom(seed: 1_414)
        let shared = random.bytes(800_000)
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/app", random.bytes(400_000))]),
                                          try ImageFixture.layer([("etc/conf", Array("x=1\n".utf8))])], label: "migrate")
        try image.writeLayout(dir + "/layout", tag: "1")
        _ = try ok(["--store", embedded, "image", "import", dir + "/layout", "--name", "img"])
        _ = try ok(["--store", embedded, "container", "create", "web", "--image", "img:1"])
        let volumeTar = try ImageFixture.layer([("data/db", random.bytes(300_000))])
        FileManager.default.createFile(atPath: dir + "/vol.tar", contents: Data(volumeTar))
        _ = try ok(["--store", embedded, "volume", "import", "vol", dir + "/vol.tar"])
        for (name, bytes) in [("a", shared + random.bytes(200_000)), ("b", shared + random.bytes(100_000)), ("gone", random.bytes(50_000))] {
            FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(bytes))
        }
        func put(_ name: String) throws -> String {
            let out = try ok(["--store", embedded, "put", dir + "/" + name, "--json"])
            return try XCTUnwrap(out.range(of: #"sha256:[0-9a-f]{64}"#, options: .regularExpression).map { String(out[$0]) })
        }
        let a = try put("a")
        _ = try put("b")
        _ = try ok(["--store", embedded, "rm", try put("gone")])
        _ = try ok(["--store", embedded, "gc"])
        _ = try ok(["--store", embedded, "settle", "--full-speed"])
        let listing = try ok(["--store", embedded, "ls", "--json"])
        let digests = try blobDigests(listing)
        XCTAssertGreaterThanOrEqual(digests.count, 6)
        let usage = try ok(["--store", embedded, "df", "--json"])

        // Into the cluster: a store there is created by migrate, not by init.
        let cluster = try makeCluster(nodes: 2, initialize: false)
        let into = try blobctl(["--store", embedded, "migrate", cluster.configs[0], "--json"])
        XCTAssertEqual(into.status, 0, into.stderr)
        let copied = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(into.stdout.utf8)) as? [String: Any])
        XCTAssertGreaterThan(((copied["copied"] as? [String: Any])?["packs"] as? Int) ?? 0, 0)
        // Read through the other node: same listing, same usage, every blob byte-exact.
        let node = cluster.configs[1]
        XCTAssertEqual(try ok(["--store", node, "ls", "--json"]), listing)
        XCTAssertEqual(try usageFigures(try ok(["--store", node, "df", "--json"])), try usageFigures(usage))
        try assertSameBlobs(digests, embedded, node, dir)
        XCTAssertTrue(try ok(["--store", node, "volume", "ls"]).contains("vol"))
        XCTAssertTrue(try ok(["--store", node, "container", "ls"]).contains("web"))
        _ = try ok(["--store", node, "fsck"])
        // A published cluster is never migrated into again.
        let again = try blobctl(["--store", embedded, "migrate", cluster.configs[0]])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)

        // Work on the cluster, then back into a folder: what changed there comes along.
        _ = try ok(["--store", node, "rm", a])
        let kept = digests.filter { $0 != a }
        let back = dir + "/back"
        let out = try blobctl(["--store", node, "migrate", back])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stdout.contains("healthy"), out.stdout)
        XCTAssertEqual(try blobDigests(try ok(["--store", back, "ls", "--json"])), kept)
        try assertSameBlobs(kept, node, back, dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: back + ".migrating"))
        // The counts came along: removing the container and the image frees their blobs.
        _ = try ok(["--store", back, "container", "rm", "web"])
        _ = try ok(["--store", back, "image", "rm", "img:1"])
        _ = try ok(["--store", back, "gc"])
        _ = try ok(["--store", back, "fsck"])
        XCTAssertLessThan(try blobDigests(try ok(["--store", back, "ls", "--json"])).count, kept.count)
        // A folder that holds anything is refused, and left as it was.
        let refused = try blobctl(["--store", node, "migrate", back])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("not empty"), refused.stderr)
        _ = try ok(["--store", back, "fsck"])
    }

    /// A store in use (a `put` holding its lease) is refused, and nothing is left behind.
    func testMigrateRefusesAStoreInUse() throws {
        let dir = try makeTemporaryDirectory(self)
        let embedded = dir + "/embedded"
        XCTAssertEqual(try runBlobctl(["--store", embedded, "init"]).status, 0)
        let put = try startPut(root: embedded)
        put.input.fileHandleForWriting.write(Data(repeating: 7, count: 1 << 20))
        var refusal: CommandResult?
        for attempt in 0..<20 where refusal == nil {
            let r = try runBlobctl(["--store", embedded, "migrate", dir + "/copy\(attempt)"])
            if r.status != 0 { refusal = r } else { Thread.sleep(forTimeInterval: 0.2) }
        }
        let r = try XCTUnwrap(refusal, "migrate never saw the put's lease")
        XCTAssertTrue(r.stderr.contains("in use"), r.stderr)
        try put.input.fileHandleForWriting.close()
        put.process.waitUntilExit()
        XCTAssertEqual(put.process.terminationStatus, 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertFalse(names.contains { $0.hasSuffix(".migrating") }, "\(names)")
    }

    private func blobDigests(_ json: String) throws -> [String] {
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        return rows.compactMap { $0["digest"] as? String }
    }

    /// What `df --json` says of the content, not of where it sits.
    private func usageFigures(_ json: String) throws -> [String: Int] {
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return all.compactMapValues { $0 as? Int }
    }

    private func assertSameBlobs(_ digests: [String], _ a: String, _ b: String, _ dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for digest in digests {
            let pa = dir + "/get-a", pb = dir + "/get-b"
            XCTAssertEqual(try runBlobctl(["--store", a, "get", digest, "-o", pa]).status, 0, file: file, line: line)
            let got = try runBlobctl(["--store", b, "get", digest, "-o", pb])
            XCTAssertEqual(got.status, 0, "\(digest): \(got.stderr)", file: file, line: line)
            XCTAssertEqual(FileManager.default.contents(atPath: pa), FileManager.default.contents(atPath: pb), digest, file: file, line: line)
        }
    }
}
