import BlobStore
import Foundation
import GC
import XCTest

final class ContainerVolumeTests: XCTestCase {
    var random = TestRandom(seed: 4000)

    func storeWithImage() throws -> (Store, ImageFixture, String) {
        let store = try makeStore(self)
        let dir = try makeTemporaryDirectory(self)
        let image = ImageFixture(layers: [try ImageFixture.layer([("bin/tool", random.bytes(2 << 20))])], label: "c")
        try image.writeLayout(dir + "/img", tag: "1")
        _ = try ImageImporter(store: store, defaultName: "img").importImages(from: dir + "/img")
        return (store, image, dir)
    }

    func diffTar(_ dir: String, _ name: String, size: Int) throws -> String {
        let path = dir + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(try ImageFixture.layer([("var/log/app.log", random.text(size))])))
        return path
    }

    func testRemovingAContainerFreesItsDiffAndAnonymousVolumesOnly() throws {
        let (store, image, dir) = try storeWithImage()
        let c = try store.createContainer("web", image: ImageReference(parsing: "img:1"),
                                          mounts: [MountSpec(parsing: "/data"), MountSpec(parsing: "cache:/cache")])
        let anonymous = try XCTUnwrap(c.mounts.first { $0.anonymous }).volume
        // The container's diff and its volumes' content.
        let diff = try store.withLease("t") { _ in try store.ingest(file: try diffTar(dir, "diff.tar", size: 500_000)) }
        try store.setContainerDiff("web", diff.digest)
        let anonData = try store.withLease("t") { _ in try store.ingest(file: try diffTar(dir, "anon.tar", size: 400_000)) }
        try store.setVolumeSnapshot(anonymous, anonData.digest)
        let cacheData = try store.withLease("t") { _ in try store.ingest(file: try diffTar(dir, "cache.tar", size: 300_000)) }
        try store.setVolumeSnapshot("cache", cacheData.digest)
        try assertCountsConsistent(store)

        // df: the container holds its diff and anonymous volume exclusively, the image's
        // layers are shared with the image's tag.
        let usage = try store.objectUsage()
        let web = try XCTUnwrap(usage.first { $0.kind == .container && $0.name == "web" })
        XCTAssertGreaterThan(web.exclusiveBytes, 0)
        XCTAssertGreaterThan(web.sharedBytes, 0)
        let img = try XCTUnwrap(usage.first { $0.kind == .image })
        XCTAssertEqual(img.exclusiveBytes, 0, "the container still uses every layer of the image")

        // Predicted by df, confirmed by gc.
        let removed = try store.removeContainer("web")
        XCTAssertEqual(removed, [anonymous])
        let dry = try GarbageCollector(store: store).collect(dryRun: true)
        let report = try GarbageCollector(store: store).collect()
        XCTAssertEqual(report.blobsFreed, dry.blobsFreed)
        XCTAssertEqual(report.bytesFreed, dry.bytesFreed)
        XCTAssertEqual(report.blobsFreed, 2, "the diff and the anonymous volume's snapshot")
        XCTAssertEqual(report.bytesFreed, web.exclusiveBytes, "df's exclusive bytes are what removal frees")
        XCTAssertFalse(try store.contains(diff.digest))
        XCTAssertFalse(try store.contains(anonData.digest))
        // The named volume and the image are untouched.
        XCTAssertEqual(try store.readAll(cacheData.digest, verify: true).count, Int(cacheData.size))
        XCTAssertEqual(try store.volume("cache").users, 0)
        for blob in image.blobs { XCTAssertEqual(try store.readAll(blob.sha256), blob) }
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }

    func testNamedVolumeOutlivesContainerAndPruneRemovesIt() throws {
        let (store, _, dir) = try storeWithImage()
        _ = try store.createContainer("db", image: ImageReference(parsing: "img:1"), mounts: [MountSpec(parsing: "pgdata:/var/lib/pg")])
        let data = try store.withLease("t") { _ in try store.ingest(file: try diffTar(dir, "pg.tar", size: 200_000)) }
        try store.setVolumeSnapshot("pgdata", data.digest)
        XCTAssertThrowsError(try store.removeVolume("pgdata"), "in use")
        XCTAssertEqual(try store.pruneVolumes(), [], "in use: prune keeps it")
        try store.removeContainer("db")
        XCTAssertEqual(try store.volumes().map(\.name), ["pgdata"])
        _ = try GarbageCollector(store: store).collect()
        XCTAssertTrue(try store.contains(data.digest), "the named volume's data survives its container")
        XCTAssertEqual(try store.pruneVolumes(), ["pgdata"])
        _ = try GarbageCollector(store: store).collect()
        XCTAssertFalse(try store.contains(data.digest))
        try assertCountsConsistent(store)
    }

    func testContainerKeepsImageDataAfterTheImageIsRemoved() throws {
        let (store, image, _) = try storeWithImage()
        _ = try store.createContainer("job", image: ImageReference(parsing: "img:1"), mounts: [])
        try store.removeImage(ImageReference(parsing: "img:1"))
        _ = try GarbageCollector(store: store).collect()
        for blob in image.blobs { XCTAssertEqual(try store.readAll(blob.sha256), blob) }
        try store.removeContainer("job")
        let report = try GarbageCollector(store: store).collect()
        XCTAssertEqual(report.blobsFreed, 3)
        XCTAssertEqual(try store.totals().blobs, 0)
        XCTAssertEqual(try store.totals().chunks, 0)
    }

    func testCommitReplacesTheDiffAndDedupsAgainstImageChunks() throws {
        let (store, image, dir) = try storeWithImage()
        _ = try store.createContainer("app", image: ImageReference(parsing: "img:1"), mounts: [])
        // A diff that repeats the image's layer content costs almost nothing.
        let path = dir + "/copy.tar"
        FileManager.default.createFile(atPath: path, contents: Data(image.layers[0]))
        let first = try store.withLease("t") { _ in try store.ingest(file: path) }
        XCTAssertTrue(first.alreadyPresent || first.storedBytes < 100_000)
        try store.setContainerDiff("app", first.digest)
        let second = try store.withLease("t") { _ in try store.ingest(file: try diffTar(dir, "d2.tar", size: 100_000)) }
        try store.setContainerDiff("app", second.digest)
        XCTAssertEqual(try store.container("app").diff, second.digest)
        try assertCountsConsistent(store)
    }

    func testHostileNamesAreRefused() throws {
        let (store, _, _) = try storeWithImage()
        for bad in ["../x", "a/b", "", ".hidden", String(repeating: "a", count: 200), "spa ce"] {
            XCTAssertThrowsError(try store.createContainer(bad, image: ImageReference(parsing: "img:1"), mounts: []), "container \(bad)")
            XCTAssertThrowsError(try store.createVolume(bad), "volume \(bad)")
        }
        XCTAssertThrowsError(try MountSpec(parsing: "relative/path"))
        XCTAssertThrowsError(try MountSpec(parsing: "/a/../../etc"))
        XCTAssertThrowsError(try ImageReference(parsing: "UPPER/case:1"))
        XCTAssertThrowsError(try ImageReference(parsing: "a/../b:1"))
        XCTAssertThrowsError(try store.createContainer("ok", image: ImageReference(parsing: "img:missing"), mounts: []))
        XCTAssertEqual(try store.containers().count, 0)
    }
}
