import BlobStore
import Foundation
import XCTest

/// The habits people bring from docker, restic and skopeo, tried on the real binary.
final class DailyUseTests: XCTestCase {
    private func blobctl(_ root: String, _ args: [String], expect status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let r = try runBlobctl(["--store", root] + args)
        XCTAssertEqual(r.status, status, "blobctl \(args.joined(separator: " ")): \(r.stdout) \(r.stderr)", file: file, line: line)
        return r
    }

    private func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    func testPutStoresSeveralFilesAndPrintsADigestPerLine() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 15_100)
        let contents = [random.bytes(300_000), random.text(10_000), []]
        let paths = contents.indices.map { dir + "/f\($0)" }
        for (path, bytes) in zip(paths, contents) { FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

        let put = try blobctl(root, ["put"] + paths)
        XCTAssertEqual(put.stdout.split(separator: "\n").map(String.init), contents.map(\.sha256.description))
        for (i, bytes) in contents.enumerated() {
            _ = try blobctl(root, ["get", bytes.sha256.description, "-o", dir + "/back-\(i)"])
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/back-\(i)"))), bytes)
        }
        let asJSON = try XCTUnwrap(try json(try blobctl(root, ["put", "--json"] + paths).stdout) as? [[String: Any]])
        XCTAssertEqual(asJSON.map { $0["digest"] as? String }, contents.map(\.sha256.description))
        XCTAssertEqual(asJSON.map { $0["alreadyPresent"] as? Bool }, [true, true, true])
        // One file keeps the one-object JSON scripts already parse.
        XCTAssertNotNil(try json(try blobctl(root, ["put", "--json", paths[0]]).stdout) as? [String: Any])

        // A missing file stops the command before anything is stored; --expect is for one file.
        let fresh = random.bytes(1000)
        FileManager.default.createFile(atPath: dir + "/fresh", contents: Data(fresh))
        _ = try blobctl(root, ["put", dir + "/fresh", dir + "/missing"], expect: 3)
        _ = try blobctl(root, ["stat", fresh.sha256.description], expect: 3)
        _ = try blobctl(root, ["put", "--expect", fresh.sha256.description, dir + "/fresh", paths[0]], expect: 2)
    }

    func testVersionInJSON() throws {
        let r = try runBlobctl(["--version", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let info = try XCTUnwrap(try json(r.stdout) as? [String: Any])
        XCTAssertEqual(info["version"] as? String, try runBlobctl(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(info["storeFormatVersion"] as? Int, StoreConfig.currentFormatVersion)
        XCTAssertEqual(info["packFormatVersion"] as? Int, Int(PackFormat.version))
        let commit = try XCTUnwrap(info["commit"] as? String)
        XCTAssertFalse(commit.isEmpty)
    }

    /// An image is named by name:tag, name@digest, or its ID: the manifest or config digest,
    /// in full or as a unique prefix, with or without sha256:, in every command that names one.
    func testImagesAreNamedByDigestAndByIDPrefix() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 15_200)
        let image = ImageFixture(layers: [try ImageFixture.layer([("etc/motd", random.text(5000))])], label: "ids")
        try image.writeLayout(dir + "/layout", tag: "1.0")
        _ = try blobctl(root, ["image", "import", dir + "/layout", "--name", "app"])
        let manifest = image.manifestDigest, config = image.config.sha256
        let names = ["app:1.0", "app@\(manifest)", manifest.description, manifest.hex, config.description,
                     String(config.hex.prefix(12)), "sha256:" + config.hex.prefix(8), String(manifest.hex.prefix(10))]
        for name in names {
            let inspect = try blobctl(root, ["image", "inspect", name])
            let report = try XCTUnwrap((try json(inspect.stdout) as? [String: Any]))
            XCTAssertEqual(report["manifest"] as? String, manifest.description, name)
        }
        _ = try blobctl(root, ["image", "export", String(config.hex.prefix(12)), "-o", dir + "/out"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/blobs/sha256/" + config.hex))
        _ = try blobctl(root, ["container", "create", "web", "--image", config.description])
        _ = try blobctl(root, ["container", "create", "db", "--image", String(config.hex.prefix(12))])
        let containers = try XCTUnwrap(try json(try blobctl(root, ["container", "ls", "--json"]).stdout) as? [[String: Any]])
        XCTAssertEqual(Set(containers.compactMap { $0["manifest"] as? String }), [manifest.description])
        _ = try blobctl(root, ["image", "tag", String(config.hex.prefix(12)), "app:latest"])
        // By ID with two tags: which one to remove would be a guess.
        let twoTags = try blobctl(root, ["image", "rm", String(config.hex.prefix(12))], expect: 2)
        XCTAssertTrue(twoTags.stderr.contains("app:1.0") && twoTags.stderr.contains("app:latest"), twoTags.stderr)
        _ = try blobctl(root, ["image", "rm", "app:latest"])
        XCTAssertTrue(try blobctl(root, ["image", "rm", String(config.hex.prefix(12))]).stdout.contains("untagged app:1.0"))
        _ = try blobctl(root, ["image", "inspect", "sha256:" + String(repeating: "0", count: 64)], expect: 3)
        _ = try blobctl(root, ["image", "inspect", "nosuchimage"], expect: 3)
    }

    /// `-v` and `--mount` as Docker takes them; bind mounts and tmpfs are recorded only.
    func testDockerMountForms() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 15_300)
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/app", random.bytes(2000))])], label: "mounts")
        try image.writeLayout(dir + "/layout", tag: "1")
        _ = try blobctl(root, ["image", "import", dir + "/layout", "--name", "app"])
        _ = try blobctl(root, ["container", "create", "web", "--image", "app:1",
                               "-v", "/srv/config:/etc/app:ro", "-v", "cache:/cache", "-v", "/data",
                               "--mount", "type=tmpfs,target=/run",
                               "--mount", "type=bind,source=/srv/logs,target=/var/log,readonly",
                               "--mount", "type=volume,src=shared,dst=/shared"])
        let inspect = try XCTUnwrap(try json(try blobctl(root, ["container", "inspect", "web"]).stdout) as? [[String: Any]])
        let mounts = try XCTUnwrap(inspect.first?["Mounts"] as? [[String: Any]])
        func mount(_ destination: String) -> [String: Any]? { mounts.first { $0["Destination"] as? String == destination } }
        XCTAssertEqual(mount("/etc/app")?["Type"] as? String, "bind")
        XCTAssertEqual(mount("/etc/app")?["Source"] as? String, "/srv/config")
        XCTAssertEqual(mount("/etc/app")?["RW"] as? Bool, false)
        XCTAssertEqual(mount("/cache")?["Type"] as? String, "volume")
        XCTAssertEqual(mount("/cache")?["Name"] as? String, "cache")
        XCTAssertEqual(mount("/cache")?["RW"] as? Bool, true)
        XCTAssertEqual(mount("/data")?["Type"] as? String, "volume")
        XCTAssertEqual(mount("/run")?["Type"] as? String, "tmpfs")
        XCTAssertEqual(mount("/var/log")?["Type"] as? String, "bind")
        XCTAssertEqual(mount("/var/log")?["RW"] as? Bool, false)
        XCTAssertEqual(mount("/shared")?["Name"] as? String, "shared")
        // Volumes exist for the volume mounts only: two named, one anonymous.
        let volumes = try XCTUnwrap(try json(try blobctl(root, ["volume", "ls", "--json"]).stdout) as? [[String: Any]])
        XCTAssertEqual(volumes.count, 3)
        XCTAssertEqual(Set(volumes.compactMap { $0["anonymous"] as? Bool == false ? $0["name"] as? String : nil }), ["cache", "shared"])
        // Removing the container removes its anonymous volume; nothing of the binds existed.
        _ = try blobctl(root, ["container", "rm", "web"])
        let after = try XCTUnwrap(try json(try blobctl(root, ["volume", "ls", "--json"]).stdout) as? [[String: Any]])
        XCTAssertEqual(Set(after.compactMap { $0["name"] as? String }), ["cache", "shared"])
        XCTAssertTrue(try blobctl(root, ["fsck"]).stdout.contains("healthy"))
        // Malformed mounts are usage errors and create nothing.
        for bad in [["-v", "relative:path"], ["--mount", "type=bind,target=/x"], ["--mount", "type=tmpfs,source=/a,target=/b"],
                    ["--mount", "type=nfs,target=/x"], ["-v", "/a:/b:rx"], ["--mount", "source=v"]] {
            _ = try blobctl(root, ["container", "create", "bad", "--image", "app:1"] + bad, expect: 2)
        }
        _ = try blobctl(root, ["container", "inspect", "bad"], expect: 3)
    }

    /// Without --name, an OCI layout's images are named after its folder, and the command says so.
    func testImportSaysWhichNameItGave() throws {
        let dir = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 15_400)
        let image = ImageFixture(layers: [try ImageFixture.layer([("a", random.bytes(100))])], label: "named")
        try image.writeLayout(dir + "/l1", tag: "v1")
        let r = try blobctl(dir + "/s", ["image", "import", dir + "/l1"])
        XCTAssertTrue(r.stdout.contains("imported l1:v1"), r.stdout)
        XCTAssertTrue(r.stderr.contains("--name"), r.stderr)
        let named = try blobctl(dir + "/s", ["image", "import", dir + "/l1", "--name", "web"])
        XCTAssertTrue(named.stdout.contains("imported web:v1"), named.stdout)
        XCTAssertFalse(named.stderr.contains("--name"), named.stderr)
    }

    /// An export holds the blobs the image's manifests list, and nothing the store keeps
    /// for itself (a gzip layer's decompressed tar).
    func testExportHoldsExactlyTheImagesBlobs() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 15_500)
        let image = try ImageFixture.gzipped([try ImageFixture.layer([("usr/lib/x", random.text(200_000))])], label: "gz", scratch: dir)
        try image.writeLayout(dir + "/layout", tag: "1")
        _ = try blobctl(root, ["image", "import", dir + "/layout", "--name", "gz"])
        // Reading files of the image (here: a volume seeded from it) makes the store keep
        // the layer's plain tar beside it.
        _ = try blobctl(root, ["volume", "create", "seeded", "--from", "gz:1"])
        _ = try blobctl(root, ["image", "export", "gz:1", "-o", dir + "/out"])
        let exported = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/out/blobs/sha256"))
        XCTAssertEqual(exported, Set(image.blobs.map(\.sha256.hex)))
        let ls = try XCTUnwrap(try json(try blobctl(root, ["ls", "--json"]).stdout) as? [[String: Any]])
        XCTAssertGreaterThan(ls.count, image.blobs.count, "the store does keep the decompressed tar")
    }

    /// A blob DELETE through the registry works on images that came in by `image import`,
    /// as on pushed ones: the repository stops serving the blob; the image keeps it.
    func testRegistryBlobDeleteOnAnImportedImage() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 15_600)
        let image = ImageFixture(layers: [try ImageFixture.layer([("a", random.bytes(50_000))])], label: "del")
        try image.writeLayout(dir + "/layout", tag: "1")
        _ = try blobctl(root, ["image", "import", dir + "/layout", "--name", "library/app"])
        let server = try RegistryProcess(self, storePath: root)
        let layer = image.layers[0].sha256
        XCTAssertEqual(try server.request("GET", "/v2/library/app/blobs/\(layer)").status, 200)
        XCTAssertEqual(try server.request("DELETE", "/v2/library/app/blobs/\(layer)").status, 202)
        XCTAssertEqual(try server.request("GET", "/v2/library/app/blobs/\(layer)").status, 404)
        XCTAssertEqual(try server.request("DELETE", "/v2/library/app/blobs/\(layer)").status, 404)
        XCTAssertEqual(try server.request("GET", "/v2/library/app/blobs/\(image.config.sha256)").status, 200, "only that blob")
        // The image itself still has it.
        _ = try blobctl(root, ["image", "export", "library/app:1", "-o", dir + "/out"])
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/out/blobs/sha256/" + layer.hex))), image.layers[0])
    }

    /// Shell completion and the man page come from the command definitions themselves.
    func testCompletionScriptsAndManPage() throws {
        for (shell, marker) in [("bash", "complete -"), ("zsh", "#compdef blobctl"), ("fish", "complete -c 'blobctl'")] {
            let r = try runBlobctl(["--generate-completion-script", shell])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains(marker), "\(shell): no \(marker)")
            XCTAssertTrue(r.stdout.contains("settle"), "\(shell) completes subcommands")
        }
        let man = try runBlobctl(["manual"])
        XCTAssertEqual(man.status, 0, man.stderr)
        XCTAssertTrue(man.stdout.hasPrefix(".TH BLOBCTL 1"), String(man.stdout.prefix(80)))
        for section in [".SS put", ".SS image import", ".SS container create", ".SS settle", "--frame-kib", "--mount"] {
            XCTAssertTrue(man.stdout.contains(section), "man page lacks \(section)")
        }
        // Every roff request line is one roff knows here (no stray text starting with a dot).
        let requests = Set(man.stdout.split(separator: "\n").filter { $0.hasPrefix(".") }.map { String($0.prefix(3)) })
        XCTAssertTrue(requests.isSubset(of: [".TH", ".SH", ".SS", ".B ", ".nf", ".fi"]), "\(requests)")
    }

    /// `gc --dry-run` says what it would free by kind of object, and the real run frees that.
    func testGcSaysWhatItFreesPerKindOfObject() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/s"
        var random = TestRandom(seed: 15_700)
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/app", random.bytes(40_000))])], label: "gc")
        try image.writeLayout(dir + "/layout", tag: "1")
        _ = try blobctl(root, ["image", "import", dir + "/layout", "--name", "app"])
        _ = try blobctl(root, ["container", "create", "web", "--image", "app:1", "-v", "/data"])
        let diff = dir + "/diff.tar"
        FileManager.default.createFile(atPath: diff, contents: Data(try ImageFixture.layer([("etc/motd", random.text(20_000))])))
        _ = try blobctl(root, ["container", "commit", "web", diff])
        try FileManager.default.createDirectory(atPath: dir + "/vol", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/vol/data", contents: Data(random.bytes(30_000)))
        _ = try blobctl(root, ["volume", "import", "vol", dir + "/vol"])
        // The container goes first (its diff), then the image (manifest, config, layer), then the volume.
        _ = try blobctl(root, ["container", "rm", "web"])
        _ = try blobctl(root, ["image", "rm", "app:1"])
        _ = try blobctl(root, ["volume", "rm", "vol"])

        func byKind(_ args: [String]) throws -> [String: Int] {
            let report = try XCTUnwrap(try json(try blobctl(root, args + ["--json"]).stdout) as? [String: Any])
            let kinds = try XCTUnwrap(report["freedByKind"] as? [String: [String: Any]])
            return kinds.compactMapValues { $0["blobs"] as? Int }
        }
        XCTAssertEqual(try byKind(["gc", "--dry-run"]), ["images": 3, "containers": 1, "volumes": 1])
        let text = try blobctl(root, ["gc", "--dry-run"]).stdout
        XCTAssertTrue(text.contains("by kind: images 3 blobs"), text)
        XCTAssertTrue(text.contains("containers 1 blob ("), text)
        XCTAssertTrue(text.contains("uploads 0"), text)
        XCTAssertEqual(try byKind(["gc"]), ["images": 3, "containers": 1, "volumes": 1])
        XCTAssertEqual(try byKind(["gc"]), [:])
    }
}
