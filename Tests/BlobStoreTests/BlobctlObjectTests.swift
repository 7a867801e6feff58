import BlobStore
import Foundation
import XCTest

/// Images, containers, volumes, gc, df and fsck through the command line.
final class BlobctlObjectTests: XCTestCase {
    func testImageContainerVolumeLifecycle() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        var random = TestRandom(seed: 4500)
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/sh", random.bytes(1 << 20))])], label: "cli")
        try image.writeLayout(dir + "/layout", tag: "3.19")
        func run(_ args: [String]) throws -> CommandResult {
            let r = try runBlobctl(["--store", root] + args)
            XCTAssertEqual(r.status, 0, "blobctl \(args.joined(separator: " ")): \(r.stderr)")
            return r
        }

        XCTAssertTrue(try run(["image", "import", dir + "/layout", "--name", "alpine"]).stdout.contains("alpine:3.19"))
        _ = try run(["image", "tag", "alpine:3.19", "alpine:latest"])
        let images = try JSONSerialization.jsonObject(with: Data(try run(["image", "ls", "--json"]).stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(images?.compactMap { $0["tag"] as? String }.sorted(), ["3.19", "latest"])
        XCTAssertTrue(try run(["image", "inspect", "alpine:3.19"]).stdout.contains(image.layers[0].sha256.description))

        // Export and compare the manifest byte for byte.
        _ = try run(["image", "export", "alpine:3.19", "--format", "oci", "-o", dir + "/out"])
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/out/blobs/sha256/" + image.manifestDigest.hex), Data(image.manifest))
        _ = try run(["image", "export", "alpine:3.19", "--format", "docker", "-o", dir + "/out.tar"])
        XCTAssertTrue(try runTar(["-tf", dir + "/out.tar"]).contains("manifest.json"))

        // A container with an anonymous and a named volume, a diff, a volume import.
        _ = try run(["container", "create", "web", "--image", "alpine:3.19", "-v", "/data", "-v", "logs:/var/log"])
        let diff = dir + "/diff.tar"
        FileManager.default.createFile(atPath: diff, contents: Data(try ImageFixture.layer([("etc/motd", random.text(200_000))])))
        _ = try run(["container", "commit", "web", diff])
        try FileManager.default.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/logs/app.log", contents: Data(random.text(100_000)))
        _ = try run(["volume", "import", "logs", dir + "/logs"])
        _ = try run(["volume", "export", "logs", "-o", dir + "/logs.tar"])
        XCTAssertTrue(try runTar(["-tf", dir + "/logs.tar"]).contains("app.log"))
        XCTAssertTrue(try run(["container", "ls"]).stdout.contains("web"))

        let df = try JSONSerialization.jsonObject(with: Data(try run(["df", "--json"]).stdout.utf8)) as? [String: Any]
        let objects = df?["objects"] as? [[String: Any]] ?? []
        XCTAssertEqual(Set(objects.compactMap { $0["kind"] as? String }), ["image", "container", "volume"])

        // Remove, preview, collect.
        _ = try run(["container", "rm", "web"])
        let volumes = try JSONSerialization.jsonObject(with: Data(try run(["volume", "ls", "--json"]).stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(volumes?.compactMap { $0["name"] as? String }, ["logs"], "the named volume stays, the anonymous one went")
        let dry = try JSONSerialization.jsonObject(with: Data(try run(["gc", "--dry-run", "--json"]).stdout.utf8)) as? [String: Any]
        let real = try JSONSerialization.jsonObject(with: Data(try run(["gc", "--json"]).stdout.utf8)) as? [String: Any]
        XCTAssertEqual(dry?["blobsFreed"] as? Int, real?["blobsFreed"] as? Int)
        XCTAssertEqual(dry?["bytesFreed"] as? Int, real?["bytesFreed"] as? Int)
        XCTAssertEqual(real?["blobsFreed"] as? Int, 1, "the diff")
        XCTAssertTrue(try run(["fsck"]).stdout.contains("healthy"))
        _ = try run(["volume", "prune"])
        _ = try run(["image", "rm", "alpine:3.19", "alpine:latest"])
        _ = try run(["gc"])
        let usage = try JSONSerialization.jsonObject(with: Data(try run(["df", "--json"]).stdout.utf8)) as? [String: Any]
        XCTAssertEqual(usage?["blobs"] as? Int, 0)
        XCTAssertEqual(usage?["chunks"] as? Int, 0)
    }

    func testErrorsHaveClearMessagesAndExitCodes() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        XCTAssertEqual(try runBlobctl(["--store", root, "init"]).status, 0)
        let missing = try runBlobctl(["--store", root, "image", "import", dir + "/nothing"])
        XCTAssertEqual(missing.status, 3)
        FileManager.default.createFile(atPath: dir + "/bad.tar", contents: Data("garbage".utf8))
        let bad = try runBlobctl(["--store", root, "image", "import", dir + "/bad.tar"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("tar"), bad.stderr)
        XCTAssertEqual(try runBlobctl(["--store", root, "container", "create", "../x", "--image", "a:1"]).status, 2)
        XCTAssertEqual(try runBlobctl(["--store", root, "container", "create", "c", "--image", "nope:1"]).status, 3)
        XCTAssertEqual(try runBlobctl(["--store", root, "volume", "rm", "nope"]).status, 3)
    }

    /// A tar that makes a symlink and then writes, or hard-links, through it (`etc -> /etc`,
    /// then `etc/passwd`) is refused by `volume import` and `container commit`: whoever
    /// extracts the volume or the diff later would otherwise write outside its directory.
    /// `..` and absolute member names are refused too. A tar with symlinks and files beside
    /// them is fine.
    func testTarsThatWriteThroughTheirOwnSymlinksAreRefused() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/sh", Array("#!".utf8))])], label: "cli")
        try image.writeLayout(dir + "/layout", tag: "1")
        XCTAssertEqual(try runBlobctl(["--store", root, "image", "import", dir + "/layout", "--name", "img"]).status, 0)
        XCTAssertEqual(try runBlobctl(["--store", root, "container", "create", "web", "--image", "img:1"]).status, 0)
        func tar(_ name: String, _ entries: [TarEntry]) throws -> String {
            var out: [UInt8] = []
            var writer = TarWriter { out.append(contentsOf: $0) }
            for e in entries { try writer.writeEntry(e, content: e.kind == .regular ? [UInt8](repeating: 0x41, count: Int(e.size)) : []) }
            try writer.finish()
            FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(out))
            return dir + "/" + name
        }
        let hostile = [
            try tar("absolute-link.tar", [TarEntry(path: "etc", kind: .symlink, linkTarget: "/etc"),
                                          TarEntry(path: "etc/passwd", kind: .regular, size: 4)]),
            try tar("relative-link.tar", [TarEntry(path: "a/", kind: .directory),
                                          TarEntry(path: "a/up", kind: .symlink, linkTarget: "../../.."),
                                          TarEntry(path: "a/up/x/y", kind: .regular, size: 1)]),
            try tar("hard-link.tar", [TarEntry(path: "s", kind: .symlink, linkTarget: "/etc"),
                                      TarEntry(path: "shadow", kind: .hardLink, linkTarget: "s/shadow")]),
            try tar("directory-link.tar", [TarEntry(path: "d", kind: .symlink, linkTarget: "/tmp"),
                                           TarEntry(path: "d/sub/", kind: .directory)]),
        ]
        for path in hostile {
            for command in [["volume", "import", "vol", path], ["container", "commit", "web", path]] {
                let r = try runBlobctl(["--store", root] + command)
                XCTAssertEqual(r.status, 2, "\(command.joined(separator: " ")): \(r.stdout)")
                XCTAssertTrue(r.stderr.contains("symbolic link"), "\(command.joined(separator: " ")): \(r.stderr)")
            }
        }
        let store = try Store.open(at: root)
        XCTAssertNil(try store.volumes().first { $0.name == "vol" }?.snapshot, "no snapshot was stored")
        XCTAssertNil(try store.container("web").diff, "no diff was stored")

        let fine = try tar("fine.tar", [TarEntry(path: "lib", kind: .symlink, linkTarget: "usr/lib"),
                                        TarEntry(path: "usr/lib/x.so", kind: .regular, size: 3),
                                        TarEntry(path: "link-to-lib-file", kind: .hardLink, linkTarget: "usr/lib/x.so")])
        XCTAssertEqual(try runBlobctl(["--store", root, "volume", "import", "vol", fine]).status, 0)
        XCTAssertEqual(try runBlobctl(["--store", root, "container", "commit", "web", fine]).status, 0)
    }
}
