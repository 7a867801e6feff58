import BlobStore
import GC
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A real containerd running containers on `blobctl containerd-proxy` as its snapshotter
/// (and content store), pulling from `blobctl serve` over the same store.
final class ContainerdSnapshotterTests: XCTestCase {
    /// Two layers of busybox-static's commands: the second deletes a file of the first
    /// (`.wh.`), hides a directory's old content (`.wh..wh..opq`) and adds `big`.
    static func busyboxImage(big: [UInt8], label: String) throws -> ImageFixture {
        let busybox = try XCTUnwrap(FileManager.default.contents(atPath: "/bin/busybox"), "needs busybox-static")
        let t: Int64 = 1_700_000_000
        func layer(_ write: (inout TarWriter) throws -> Void) throws -> [UInt8] {
            var out: [UInt8] = []
            var writer = TarWriter { out.append(contentsOf: $0) }
            try write(&writer)
            try writer.finish()
            return out
        }
        let base = try layer { w in
            for dir in ["bin/", "etc/", "opt/", "opt/dir/", "root/", "tmp/"] { try w.writeEntry(TarEntry(path: dir, kind: .directory, mode: 0o755, mtime: t)) }
            try w.writeEntry(TarEntry(path: "bin/busybox", kind: .regular, size: UInt64(busybox.count), mode: 0o755, mtime: t), content: Array(busybox))
            for tool in ["sh", "cat", "ls", "test", "echo", "sha256sum", "rm"] {
                try w.writeEntry(TarEntry(path: "bin/" + tool, kind: .symlink, mode: 0o777, mtime: t, linkTarget: "busybox"))
            }
            try w.writeEntry(TarEntry(path: "etc/removed", kind: .regular, size: 5, mode: 0o644, mtime: t), content: Array("gone\n".utf8))
            try w.writeEntry(TarEntry(path: "opt/dir/old", kind: .regular, size: 4, mode: 0o644, mtime: t), content: Array("old\n".utf8))
        }
        let top = try layer { w in
            for dir in ["etc/", "opt/", "opt/dir/"] { try w.writeEntry(TarEntry(path: dir, kind: .directory, mode: 0o755, mtime: t)) }
            try w.writeEntry(TarEntry(path: "etc/.wh.removed", kind: .regular, mtime: t))
            try w.writeEntry(TarEntry(path: "opt/dir/.wh..wh..opq", kind: .regular, mtime: t))
            try w.writeEntry(TarEntry(path: "opt/dir/new", kind: .regular, size: 4, mode: 0o644, mtime: t), content: Array("new\n".utf8))
            let hello = Array("hello from \(label)\n".utf8)
            try w.writeEntry(TarEntry(path: "hello", kind: .regular, size: UInt64(hello.count), mode: 0o644, mtime: t), content: hello)
            try w.writeEntry(TarEntry(path: "big", kind: .regular, size: UInt64(big.count), mode: 0o644, mtime: t), content: big)
        }
        return ImageFixture(layers: [base, top], label: label)
    }

    /// The chain ID of an image's top layer: the committed snapshot containerd unpacks it to.
    static func chainID(_ image: ImageFixture) -> String {
        var chain = image.layers[0].sha256.description
        for layer in image.layers.dropFirst() { chain = Array("\(chain) \(layer.sha256)".utf8).sha256.description }
        return chain
    }

    func testContainerdPullsAndRunsContainersOnTheStore() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/bin/busybox") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("needs root and busybox-static in CI") }
            throw XCTSkip("needs root and busybox-static")
        }
        let dir = try makeTemporaryDirectory(self)
        let storePath = dir + "/store"
        var random = TestRandom(seed: 1200)
        let big = random.bytes(6_000_000)
        let image = try Self.busyboxImage(big: big, label: "v1")
        try image.writeLayout(dir + "/layout", tag: "v1")

        // In the registry first (uncompressed layers, as imported): containerd's pull then
        // stores no blob again, and its snapshots' layers share the registry's chunks.
        let imported = try runBlobctl(["--store", storePath, "image", "import", dir + "/layout", "--name", "app"])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let registry = try RegistryProcess(self, storePath: storePath)
        func stored() throws -> Int {
            let df = try runBlobctl(["--store", storePath, "df", "--json"])
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any])?["storedBytes"] as? Int)
        }
        let pushed = try stored()

        let containerd = try ContainerdProcess(self, store: storePath, proxyArguments: ["--settle-after", "1"])
        let reference = "\(registry.base)/app:v1"
        let pull = try containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "blobstore", reference])
        XCTAssertEqual(pull.status, 0, pull.stderr + containerd.log("proxy.log"))
        // The content is the registry's; the snapshots' layers share its chunks.
        XCTAssertLessThan(try stored() - pushed, big.count / 4, "containerd's content or its snapshots stored the image again")
        let store = try Store.open(at: storePath)
        // Committed snapshots are archived in the background: one layer each.
        let archived = Date().addingTimeInterval(30)
        while try store.claims(by: "containerd-snapshots").count < 2 {
            guard Date() < archived else { return XCTFail("the snapshots were not archived:\n\(containerd.log("proxy.log"))") }
            usleep(100_000)
        }
        XCTAssertEqual(try store.claims(by: "containerd-snapshots").count, 2, "one layer per committed snapshot")
        let snapshotLayers = Set(try store.claims(by: "containerd-snapshots").map(\.digest))

        // Idle, the unpacked trees settle: the snapshots are then only chunks in the store.
        let snapshotsRoot = storePath + "/containerd/snapshots"
        let deadline = Date().addingTimeInterval(20)
        while try FileManager.default.contentsOfDirectory(atPath: snapshotsRoot).contains(where: { FileManager.default.fileExists(atPath: snapshotsRoot + "/" + $0 + "/fs") }) {
            guard Date() < deadline else { return XCTFail("the idle trees were not settled:\n\(containerd.log("proxy.log"))") }
            usleep(200_000)
        }

        // A container runs on them (unpacked again), sees the layers' deletions and writes.
        // Results go to a bind-mounted folder, not ctr's stdout: ctr closes a task's output
        // pipes before it drains them (task.Delete), and loses a fast task's last lines.
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let outMount = ["--mount", "type=bind,src=\(out),dst=/out,options=rbind:rw"]
        func result(_ name: String) -> String { (try? String(contentsOfFile: out + "/" + name, encoding: .utf8)) ?? "" }
        let script = "{ cat /hello; ls /opt/dir; test -e /etc/removed && echo removed-visible; echo written > /root/w && cat /root/w; sha256sum /big; } > /out/c1"
        let run = try containerd.ctr(["run", "--rm", "--snapshotter", "blobstore"] + outMount + [reference, "c1", "/bin/sh", "-c", script])
        XCTAssertEqual(run.status, 0, run.stderr + containerd.log("proxy.log"))
        XCTAssertEqual(result("c1").split(separator: "\n").map(String.init),
                       ["hello from v1", "new", "written", "\(big.sha256.hex)  /big"], run.stderr)

        // ctr snapshots: prepare over the image, change it, commit, view the commit.
        let snapshots = ["snapshots", "--snapshotter", "blobstore"]
        XCTAssertEqual(try containerd.ctr(snapshots + ["prepare", "work1", Self.chainID(image)]).status, 0)
        let target = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        func mount(_ key: String) throws {
            let command = try containerd.ctr(snapshots + ["mounts", target, key])
            XCTAssertEqual(command.status, 0, command.stderr)
            let mounted = try runTool("/bin/sh", ["-c", command.stdout])
            XCTAssertEqual(mounted.status, 0, command.stdout + mounted.stderr)
        }
        try mount("work1")
        try Data("added\n".utf8).write(to: URL(fileURLWithPath: target + "/added"))
        try FileManager.default.removeItem(atPath: target + "/hello")
        XCTAssertEqual(umount(target), 0)
        let commit = try containerd.ctr(snapshots + ["commit", "snap1", "work1"])
        XCTAssertEqual(commit.status, 0, commit.stderr)
        let listed = try containerd.ctr(snapshots + ["ls"])
        XCTAssertTrue(listed.stdout.contains("snap1"), listed.stdout)
        XCTAssertFalse(listed.stdout.contains("work1"), listed.stdout)
        // `ctr snapshots view` labels no GC root (prepare and commit do), so containerd's
        // next GC may take a view at once: a second snapshot over snap1 reads it instead.
        XCTAssertEqual(try containerd.ctr(snapshots + ["prepare", "view1", "snap1"]).status, 0)
        try mount("view1")
        XCTAssertEqual(FileManager.default.contents(atPath: target + "/added"), Data("added\n".utf8))
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + "/hello"), "deleted in snap1")
        XCTAssertEqual(FileManager.default.contents(atPath: target + "/opt/dir/new"), Data("new\n".utf8))
        XCTAssertEqual(umount(target), 0)
        let usage = try containerd.ctr(snapshots + ["usage", "snap1"])
        XCTAssertEqual(usage.status, 0, usage.stderr)
        for key in ["view1", "snap1"] {
            let removed = try containerd.ctr(snapshots + ["rm", key])
            XCTAssertEqual(removed.status, 0, removed.stderr)
        }

        // A running container does not notice the proxy killed and restarted: its file
        // system is local directories, so no read fails and no file handle goes stale.
        let loop = "while true; do sha256sum /big > /tmp/sum && cat /tmp/sum > /out/sum.new && mv /out/sum.new /out/sum || exit 7; /bin/busybox sleep 0.1; done"
        XCTAssertEqual(try containerd.ctr(["run", "-d", "--snapshotter", "blobstore"] + outMount + [reference, "c3", "/bin/sh", "-c", loop]).status, 0)
        usleep(500_000)
        containerd.killProxy()
        usleep(1_000_000)
        try containerd.startProxy()
        // A sum written after the restart: the loop goes on reading.
        try? FileManager.default.removeItem(atPath: out + "/sum")
        let sumDeadline = Date().addingTimeInterval(10)
        while result("sum").isEmpty, Date() < sumDeadline { usleep(100_000) }
        XCTAssertEqual(result("sum"), "\(big.sha256.hex)  /big\n")
        let tasks = try containerd.ctr(["tasks", "ls"])
        XCTAssertTrue(tasks.stdout.contains("RUNNING"), "the container's reads failed: \(tasks.stdout)")
        _ = try containerd.ctr(["tasks", "kill", "-s", "SIGKILL", "c3"])
        usleep(300_000)
        _ = try containerd.ctr(["tasks", "rm", "-f", "c3"])
        XCTAssertEqual(try containerd.ctr(["containers", "rm", "c3"]).status, 0)

        // Images removed, containerd's GC removes its snapshots and drops every claim; the
        // registry's blobs stay, and gc frees the snapshot layers only containerd held.
        XCTAssertEqual(try containerd.ctr(["images", "rm", reference]).status, 0)
        let collected = try containerd.waitForGC(timeout: 30) {
            try store.claims(by: "containerd").isEmpty && store.claims(by: "containerd-snapshots").isEmpty
        }
        if !collected {
            let left = try store.claims(by: "containerd").map(\.digest.description) + store.claims(by: "containerd-snapshots").map { "snapshot layer \($0.digest)" }
            let views = try [["snapshots", "--snapshotter", "blobstore", "ls"], ["content", "ls"], ["leases", "ls"], ["images", "ls"], ["containers", "ls"]]
                .map { args in try containerd.ctr(args) }.map { $0.stdout + $0.stderr }.joined(separator: "\n")
            // The headline last: CI shows a failure's last lines.
            return XCTFail("\(containerd.log("containerd.log").suffix(3000))\n\(containerd.log("proxy.log").suffix(3000))\n\(views)\ncontainerd's GC did not drop the claims: \(left)")
        }
        XCTAssertEqual(try runBlobctl(["--store", storePath, "gc"]).status, 0)
        for layer in image.layers { XCTAssertTrue(try store.contains(layer.sha256), "the registry's layer \(layer.sha256) went") }
        let imageLayers = Set(image.layers.map(\.sha256))
        for layer in snapshotLayers.subtracting(imageLayers) { XCTAssertFalse(try store.contains(layer), "snapshot layer \(layer) outlived its snapshot") }
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: snapshotsRoot).filter { $0 != "catalog.json" }
        XCTAssertEqual(leftovers, [], "snapshot folders outlived their snapshots")

        // The proxy killed mid-pull and restarted: the pull is retried and completes, and
        // the store is sound. (Last: a pull cut short may leave containerd a lease that
        // keeps what it wrote for a day, which would hold up the GC checks above.)
        let image2 = try Self.busyboxImage(big: random.bytes(40_000_000), label: "v2")
        try image2.writeLayout(dir + "/layout2", tag: "v2")
        let imported2 = try runBlobctl(["--store", storePath, "image", "import", dir + "/layout2", "--name", "app"])
        XCTAssertEqual(imported2.status, 0, imported2.stderr)
        let reference2 = "\(registry.base)/app:v2"
        let interrupted = Process()
        interrupted.executableURL = URL(fileURLWithPath: try requireTool("ctr"))
        interrupted.arguments = ["--address", containerd.socket, "images", "pull", "--plain-http", "--snapshotter", "blobstore", reference2]
        interrupted.standardOutput = FileHandle.nullDevice
        interrupted.standardError = FileHandle.nullDevice
        try interrupted.run()
        usleep(300_000)
        containerd.killProxy()
        try containerd.startProxy()
        interrupted.waitUntilExit()
        let retried = try containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "blobstore", reference2])
        XCTAssertEqual(retried.status, 0, retried.stderr + containerd.log("proxy.log"))
        let run2 = try containerd.ctr(["run", "--rm", "--snapshotter", "blobstore"] + outMount + [reference2, "c2", "/bin/sh", "-c", "cat /hello > /out/c2"])
        XCTAssertEqual(run2.status, 0, run2.stderr)
        XCTAssertEqual(result("c2"), "hello from v2\n", run2.stderr)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try store.close()
    }
}
