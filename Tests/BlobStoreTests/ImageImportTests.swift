import BlobStore
import Foundation
import GC
import XCTest

final class ImageImportTests: XCTestCase {
    var random = TestRandom(seed: 3000)

    func twoImagesSharingABase() throws -> (ImageFixture, ImageFixture) {
        let base = try ImageFixture.layer([("usr/lib/libbase.so", random.bytes(3 << 20)), ("etc/os-release", Array("ID=test\n".utf8))])
        let appA = try ImageFixture.layer([("app/a.py", random.text(600_000))])
        let appB = try ImageFixture.layer([("app/b.py", random.text(700_000))])
        return (ImageFixture(layers: [base, appA], label: "a"), ImageFixture(layers: [base, appB], label: "b"))
    }

    func testTwoImagesShareTheirBaseAndRemovingOneKeepsTheOther() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let (a, b) = try twoImagesSharingABase()
        try a.writeLayout(dir + "/a", tag: "v1")
        try b.writeLayout(dir + "/b", tag: "v1")
        let ia = try ImageImporter(store: store, defaultName: "app-a").importImages(from: dir + "/a")
        let ib = try ImageImporter(store: store, defaultName: "app-b").importImages(from: dir + "/b")
        XCTAssertEqual(ia.map(\.reference), ["app-a:v1"])
        XCTAssertEqual(ib.first?.manifest, b.manifestDigest)

        // The base layer is one blob with two references, stored once.
        let baseInfo = try store.stat(a.layers[0].sha256)
        XCTAssertEqual(baseInfo.references, 2)
        XCTAssertEqual(try store.totals().blobs, 7, "2 manifests, 2 configs, 3 layers")
        let base = UInt64(a.layers[0].count)
        XCTAssertLessThan(try store.totals().uniqueBytes, base + UInt64(a.layers[1].count + b.layers[1].count) + 100_000)
        try assertCountsConsistent(store)

        // Remove image a and collect: b is intact, a's own layer is gone.
        try store.removeImage(ImageReference(parsing: "app-a:v1"))
        let report = try GarbageCollector(store: store).collect()
        XCTAssertEqual(report.blobsFreed, 3, "a's manifest, config and own layer")
        XCTAssertFalse(try store.contains(a.layers[1].sha256))
        XCTAssertFalse(try store.contains(a.manifestDigest))
        XCTAssertEqual(try store.stat(a.layers[0].sha256).references, 1)
        for blob in b.blobs { XCTAssertEqual(try store.readAll(blob.sha256, verify: true), blob) }
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }

    func testDockerSaveLegacyTarball() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let (a, _) = try twoImagesSharingABase()
        try a.writeDockerSave(dir + "/a.tar", repoTag: "example.com/team/app:1.0")
        let imported = try ImageImporter(store: store, defaultName: "x").importImages(from: dir + "/a.tar")
        XCTAssertEqual(imported.map(\.reference), ["example.com/team/app:1.0"])
        let m = try store.manifest(imported[0].manifest)
        XCTAssertEqual(m.layers.map(\.digest), a.layers.map(\.sha256))
        XCTAssertEqual(m.config?.digest, a.config.sha256)
        // The same archive again: same synthesized manifest, nothing new.
        let again = try ImageImporter(store: store, defaultName: "x").importImages(from: dir + "/a.tar")
        XCTAssertEqual(again[0].manifest, imported[0].manifest)
        try assertCountsConsistent(store)
    }

    func testExportGivesBackIdenticalManifestsAndBlobs() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let (a, _) = try twoImagesSharingABase()
        try a.writeLayout(dir + "/in", tag: "v1")
        _ = try ImageImporter(store: store, defaultName: "app").importImages(from: dir + "/in")
        let ref = try ImageReference(parsing: "app:v1")

        try ImageExporter(store: store).exportLayout(ref, to: dir + "/out")
        for blob in a.blobs {
            XCTAssertEqual(FileManager.default.contents(atPath: dir + "/out/blobs/sha256/" + blob.sha256.hex), Data(blob))
        }
        // The exported layout imports into a fresh store with the same manifest digest.
        let other = try makeStore(self)
        let back = try ImageImporter(store: other, defaultName: "x").importImages(from: dir + "/out")
        XCTAssertEqual(back.map(\.reference), ["app:v1"])
        XCTAssertEqual(back[0].manifest, a.manifestDigest)

        // The docker form: a tar with the same blobs and a manifest.json for docker load.
        try ImageExporter(store: store).exportDockerArchive(ref, to: dir + "/out.tar")
        let third = try makeStore(self)
        let fromTar = try ImageImporter(store: third, defaultName: "x").importImages(from: dir + "/out.tar")
        XCTAssertEqual(fromTar[0].manifest, a.manifestDigest)
        XCTAssertEqual(fromTar[0].reference, "app:v1")
        let listing = try runTar(["-tf", dir + "/out.tar"])
        XCTAssertTrue(listing.contains("manifest.json"))
        XCTAssertTrue(listing.contains("blobs/sha256/" + a.layers[0].sha256.hex))
    }

    // MARK: - Malformed input changes nothing

    func assertImportFails(_ path: String, into store: Store, containing text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        _ = try GarbageCollector(store: store).collect()
        let before = try StoreSnapshot(store)
        XCTAssertThrowsError(try ImageImporter(store: store, defaultName: "bad").importImages(from: path), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(text), "error \"\(error)\" should mention \"\(text)\"", file: file, line: line)
        }
        // Blobs and tags are as before at once; chunks it wrote wait for the next gc.
        XCTAssertEqual(try store.list().map(\.digest), before.blobs, file: file, line: line)
        XCTAssertEqual(try store.images().map(\.reference), before.images, file: file, line: line)
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try StoreSnapshot(store), before, "a failed import leaves nothing behind", file: file, line: line)
        XCTAssertTrue(try store.leases().isEmpty, file: file, line: line)
    }

    func testMalformedImportsStoreNothing() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let (a, b) = try twoImagesSharingABase()
        try b.writeLayout(dir + "/ok", tag: "v1")
        _ = try ImageImporter(store: store, defaultName: "keep").importImages(from: dir + "/ok")

        // Bad JSON in index.json.
        try a.writeLayout(dir + "/badjson", tag: "v1", indexOverride: Array("{\"schemaVersion\":2,".utf8))
        try assertImportFails(dir + "/badjson", into: store, containing: "index.json")

        // A manifest that is not JSON.
        try a.writeLayout(dir + "/badmanifest", tag: "v1")
        FileManager.default.createFile(atPath: dir + "/badmanifest/blobs/sha256/" + a.manifestDigest.hex, contents: Data("not json".utf8))
        try assertImportFails(dir + "/badmanifest", into: store, containing: "mismatch")

        // A missing layer.
        try a.writeLayout(dir + "/missing", tag: "v1")
        try FileManager.default.removeItem(atPath: dir + "/missing/blobs/sha256/" + a.layers[1].sha256.hex)
        try assertImportFails(dir + "/missing", into: store, containing: "missing")

        // A layer whose bytes do not match its digest.
        try a.writeLayout(dir + "/mismatch", tag: "v1")
        FileManager.default.createFile(atPath: dir + "/mismatch/blobs/sha256/" + a.layers[1].sha256.hex, contents: Data(random.bytes(1000)))
        try assertImportFails(dir + "/mismatch", into: store, containing: "mismatch")
    }

    func testHostileAndTruncatedTarsStoreNothing() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let (a, _) = try twoImagesSharingABase()
        for (i, name) in ["../evil.json", "/etc/passwd", "a/../../b/layer.tar"].enumerated() {
            var out: [UInt8] = []
            var writer = TarWriter { out.append(contentsOf: $0) }
            // Raw header: the writer refuses unsafe names, so a hostile archive is made by hand.
            try writer.writeEntry(TarEntry(path: "placeholder\(i).json", kind: .regular, size: 2), content: Array("{}".utf8))
            try writer.finish()
            let placeholder = Array("placeholder\(i).json".utf8)
            var header = Array(out[0..<512])
            header.replaceSubrange(0..<100, with: Array(name.utf8) + [UInt8](repeating: 0, count: 100 - name.utf8.count))
            _ = placeholder
            header.replaceSubrange(148..<156, with: Array("        ".utf8))
            let sum = header.reduce(0) { $0 + Int($1) }
            let checksum = Array(String(format: "%06o\0 ", sum).utf8)
            header.replaceSubrange(148..<156, with: checksum)
            out.replaceSubrange(0..<512, with: header)
            FileManager.default.createFile(atPath: dir + "/hostile\(i).tar", contents: Data(out))
            try assertImportFails(dir + "/hostile\(i).tar", into: store, containing: name.hasPrefix("/") ? "absolute" : "..")
        }
        // Truncated in the middle of a layer.
        try a.writeDockerSave(dir + "/full.tar", repoTag: "app:1")
        let full = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/full.tar"))
        FileManager.default.createFile(atPath: dir + "/cut.tar", contents: full.prefix(full.count / 2))
        try assertImportFails(dir + "/cut.tar", into: store, containing: "truncated")
        // Not a tar at all.
        FileManager.default.createFile(atPath: dir + "/junk.tar", contents: Data(random.bytes(5000)))
        try assertImportFails(dir + "/junk.tar", into: store, containing: "tar")
        XCTAssertEqual(try store.totals().blobs, 0)
    }

    // MARK: - Paths stay inside the layout

    /// A directory import resolves every path inside the layout: a docker-save
    /// manifest.json whose Config climbs out of it, is absolute, or goes through a symlink
    /// that leaves it, and an OCI layout whose blob (or whose `blobs` folder) is a symlink
    /// out of it, are refused with an error saying so, and nothing is stored.
    func testDirectoryImportNeverReadsOutsideTheLayout() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let fm = FileManager.default
        FileManager.default.createFile(atPath: dir + "/secret", contents: Data("root:$6$not-for-you:19000:0:99999:7:::\n".utf8))
        func legacyLayout(_ name: String, config: String) throws -> String {
            let layout = dir + "/" + name
            try fm.createDirectory(atPath: layout + "/sub", withIntermediateDirectories: true)
            fm.createFile(atPath: layout + "/manifest.json", contents: Data(#"[{"Config":"\#(config)","RepoTags":["evil:1"],"Layers":[]}]"#.utf8))
            return layout
        }
        try assertImportFails(try legacyLayout("dotdot", config: "../secret"), into: store, containing: "escapes the layout root")
        try assertImportFails(try legacyLayout("deep", config: "sub/../../secret"), into: store, containing: "escapes the layout root")
        try assertImportFails(try legacyLayout("absolute", config: dir + "/secret"), into: store, containing: "escapes the layout root")
        let linked = try legacyLayout("linked", config: "config.json")
        try fm.createSymbolicLink(atPath: linked + "/config.json", withDestinationPath: "../secret")
        try assertImportFails(linked, into: store, containing: "escapes the layout root")
        let viaDirectory = try legacyLayout("via-directory", config: "outside/secret")
        try fm.createSymbolicLink(atPath: viaDirectory + "/outside", withDestinationPath: dir)
        try assertImportFails(viaDirectory, into: store, containing: "escapes the layout root")

        // OCI layouts: the digest matches (say it leaked earlier), but the bytes live outside.
        let (a, _) = try twoImagesSharingABase()
        let layer = a.layers[1].sha256.hex
        fm.createFile(atPath: dir + "/outside-layer", contents: Data(a.layers[1]))
        try a.writeLayout(dir + "/oci-absolute", tag: "v1")
        try fm.removeItem(atPath: dir + "/oci-absolute/blobs/sha256/" + layer)
        try fm.createSymbolicLink(atPath: dir + "/oci-absolute/blobs/sha256/" + layer, withDestinationPath: dir + "/outside-layer")
        try assertImportFails(dir + "/oci-absolute", into: store, containing: "escapes the layout root")
        try a.writeLayout(dir + "/oci-relative", tag: "v1")
        try fm.removeItem(atPath: dir + "/oci-relative/blobs/sha256/" + layer)
        try fm.createSymbolicLink(atPath: dir + "/oci-relative/blobs/sha256/" + layer, withDestinationPath: "../../../outside-layer")
        try assertImportFails(dir + "/oci-relative", into: store, containing: "escapes the layout root")
        try a.writeLayout(dir + "/real-blobs", tag: "v1")
        try fm.createDirectory(atPath: dir + "/oci-blobs-link", withIntermediateDirectories: true)
        try fm.copyItem(atPath: dir + "/real-blobs/index.json", toPath: dir + "/oci-blobs-link/index.json")
        try fm.createSymbolicLink(atPath: dir + "/oci-blobs-link/blobs", withDestinationPath: dir + "/real-blobs/blobs")
        try assertImportFails(dir + "/oci-blobs-link", into: store, containing: "escapes the layout root")
        XCTAssertEqual(try store.totals().blobs, 0)
    }

    /// Symlinks that stay inside the layout, and `..` that does not climb out of it, are fine.
    func testSymlinksInsideTheLayoutAreFollowed() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let fm = FileManager.default
        let (a, _) = try twoImagesSharingABase()
        try a.writeLayout(dir + "/layout", tag: "v1")
        try fm.createDirectory(atPath: dir + "/layout/pool", withIntermediateDirectories: true)
        for blob in a.blobs {
            let hex = blob.sha256.hex
            try fm.moveItem(atPath: dir + "/layout/blobs/sha256/" + hex, toPath: dir + "/layout/pool/" + hex)
            try fm.createSymbolicLink(atPath: dir + "/layout/blobs/sha256/" + hex, withDestinationPath: "../../pool/../pool/" + hex)
        }
        try fm.moveItem(atPath: dir + "/layout/index.json", toPath: dir + "/layout/pool/index.json")
        try fm.createSymbolicLink(atPath: dir + "/layout/index.json", withDestinationPath: "pool/index.json")
        let imported = try ImageImporter(store: store, defaultName: "app").importImages(from: dir + "/layout")
        XCTAssertEqual(imported.map(\.manifest), [a.manifestDigest])
        for blob in a.blobs { XCTAssertEqual(try store.readAll(blob.sha256), blob) }
    }

    /// In a docker-save tarball nothing touches the file system, but a layer link that
    /// points outside the archive is still an error that says so, not "missing".
    func testDockerSaveLayerLinksStayInsideTheArchive() throws {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let (a, _) = try twoImagesSharingABase()
        func archive(_ name: String, link: String) throws -> String {
            var out: [UInt8] = []
            var writer = TarWriter { out.append(contentsOf: $0) }
            let first = String(repeating: "0", count: 64), second = String(repeating: "1", count: 64)
            try writer.writeEntry(TarEntry(path: first + "/layer.tar", kind: .regular, size: UInt64(a.layers[0].count), mtime: 1), content: a.layers[0])
            try writer.writeEntry(TarEntry(path: second + "/layer.tar", kind: .symlink, mtime: 1, linkTarget: link))
            let configName = a.config.sha256.hex + ".json"
            try writer.writeEntry(TarEntry(path: configName, kind: .regular, size: UInt64(a.config.count), mtime: 1), content: a.config)
            let manifest = Array(#"[{"Config":"\#(configName)","RepoTags":["app:\#(name)"],"Layers":["\#(first)/layer.tar","\#(second)/layer.tar"]}]"#.utf8)
            try writer.writeEntry(TarEntry(path: "manifest.json", kind: .regular, size: UInt64(manifest.count), mtime: 1), content: manifest)
            try writer.finish()
            FileManager.default.createFile(atPath: dir + "/\(name).tar", contents: Data(out))
            return dir + "/\(name).tar"
        }
        let zeros = String(repeating: "0", count: 64)
        try assertImportFails(try archive("climbs", link: "../../\(zeros)/layer.tar"), into: store, containing: "escapes the archive root")
        try assertImportFails(try archive("absolute", link: "/\(zeros)/layer.tar"), into: store, containing: "escapes the archive root")
        // docker save's own form: a repeated layer links to its first copy.
        let imported = try ImageImporter(store: store, defaultName: "x").importImages(from: try archive("repeated", link: "../\(zeros)/layer.tar"))
        XCTAssertEqual(try store.manifest(imported[0].manifest).layers.map(\.digest), [a.layers[0].sha256, a.layers[0].sha256])
    }
}

func runTar(_ arguments: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/tar")
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
