import BlobStore
import Foundation
import GC
import XCTest

/// `blobctl fsck --rebuild-index`: with `index/` gone, the packs and the index journal are
/// enough to get every blob, image, container, volume and repository back.
final class IndexRebuildTests: XCTestCase {
    func testIndexRebuiltFromPacksAndJournalAfterLosingIt() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        var random = TestRandom(seed: 6100)
        func run(_ args: [String]) throws -> CommandResult {
            let r = try runBlobctl(["--store", root] + args)
            XCTAssertEqual(r.status, 0, "blobctl \(args.joined(separator: " ")): \(r.stderr)")
            return r
        }
        // Images, a container with volumes, a volume import, pinned blobs, a removal.
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/sh", random.bytes(1 << 20))]),
                                          try ImageFixture.layer([("etc/os-release", random.text(300_000))])], label: "rebuild")
        try image.writeLayout(dir + "/layout", tag: "1.0")
        _ = try run(["image", "import", dir + "/layout", "--name", "app"])
        _ = try run(["image", "tag", "app:1.0", "app:latest"])
        _ = try run(["container", "create", "web", "--image", "app:1.0", "-v", "/data", "-v", "logs:/var/log"])
        let diff = dir + "/diff.tar"
        FileManager.default.createFile(atPath: diff, contents: Data(try ImageFixture.layer([("etc/motd", random.text(200_000))])))
        _ = try run(["container", "commit", "web", diff])
        try FileManager.default.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/logs/app.log", contents: Data(random.text(150_000)))
        _ = try run(["volume", "import", "logs", dir + "/logs"])
        var files: [String] = []
        for i in 0..<4 {
            let path = dir + "/blob-\(i)"
            FileManager.default.createFile(atPath: path, contents: Data(random.bytes(400_000 + i * 1000)))
            files.append(path)
            _ = try run(["put", path])
        }
        _ = try run(["rm", [UInt8](try Data(contentsOf: URL(fileURLWithPath: files[3]))).sha256.description])
        // A registry repository with a tag.
        do {
            let store = try Store.open(at: root)
            for blob in image.blobs.dropLast() { try store.linkBlob("library/app", blob.sha256) }
            _ = try store.putManifest("library/app", tag: "v1", bytes: image.manifest, mediaType: "application/vnd.oci.image.manifest.v1+json")
        }
        _ = try run(["gc"])

        let views = [["image", "ls", "--json"], ["volume", "ls", "--json"], ["container", "ls", "--json"], ["ls", "--json"], ["df", "--json"]]
        let before = try views.map { try run($0).stdout }
        let digests = try Store.open(at: root).list().map(\.digest)
        var contents: [Digest: [UInt8]] = [:]
        for d in digests {
            _ = try run(["get", d.description, "-o", dir + "/out"])
            contents[d] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/out")))
        }
        XCTAssertGreaterThan(digests.count, 8)

        try FileManager.default.removeItem(atPath: root + "/index")
        XCTAssertNotEqual(try runBlobctl(["--store", root, "ls"]).status, 0, "without its index the store does not open")
        let rebuilt = try run(["fsck", "--rebuild-index", "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(rebuilt.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(report?["blobs"] as? Int, digests.count, rebuilt.stdout)
        XCTAssertEqual((report?["lostChunks"] as? [Any])?.count, 0)

        XCTAssertEqual(try views.map { try run($0).stdout }, before, "image ls, volume ls, container ls, ls and df as before")
        for d in digests {
            _ = try run(["get", d.description, "--verify", "-o", dir + "/out"])
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/out"))), contents[d], "\(d)")
        }
        XCTAssertTrue(try run(["fsck"]).stdout.contains("store is healthy"))
        do {
            let store = try Store.open(at: root)
            XCTAssertEqual(try store.tags("library/app"), ["v1"])
            XCTAssertEqual(try store.repositoryManifest("library/app", reference: "v1")?.digest, image.manifestDigest)
            try assertCountsConsistent(store)
        }
        // Collection after the rebuild frees nothing anybody uses.
        _ = try run(["gc"])
        XCTAssertEqual(try views.map { try run($0).stdout }, before)
        _ = try run(["container", "rm", "web"])
        _ = try run(["image", "rm", "app:1.0"])
        _ = try run(["image", "rm", "app:latest"])
        _ = try run(["gc"])
        XCTAssertTrue(try run(["fsck"]).stdout.contains("store is healthy"))
    }

    /// A torn frame at the journal's end (a crash mid-append) is skipped; everything before
    /// it is rebuilt.
    func testTornJournalTailIsSkipped() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        var random = TestRandom(seed: 6101)
        let data = random.bytes(700_000)
        do {
            let store = try Store.create(at: root)
            _ = try store.put(data)
        }
        let journal = try XCTUnwrap(Foundation.FileHandle(forUpdatingAtPath: root + "/index.journal"))
        try journal.seekToEnd()
        try journal.write(contentsOf: Array("BSJ1".utf8) + [200, 0, 0, 0, 1, 2, 3, 4, 9, 9])
        try journal.close()
        try FileManager.default.removeItem(atPath: root + "/index")
        let report = try IndexRebuilder.rebuild(root: root)
        XCTAssertEqual(report.journalStretchesSkipped, 1)
        XCTAssertEqual(report.blobs, 1)
        let store = try Store.open(at: root)
        XCTAssertEqual(try store.readAll(data.sha256, verify: true), data)
    }
}
