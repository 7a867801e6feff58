import BlobStore
import Foundation
import GC
import XCTest

/// The FUSE mount, used as other tools use it. Needs root and /dev/fuse (CI has both);
/// without them the tests skip locally and fail under CI.
final class FuseMountTests: XCTestCase {
    var dir = ""
    var root = ""
    var mnt = ""
    var image = ImageFixture(layers: [], label: "")
    var layerTars: [[UInt8]] = [] // uncompressed, for the reference extraction

    override func setUpWithError() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse"), FileManager.default.fileExists(atPath: "/bin/busybox") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("FUSE tests need root, /dev/fuse and busybox-static in CI") }
            throw XCTSkip("needs root, /dev/fuse and busybox-static")
        }
        dir = try makeTemporaryDirectory(self)
        root = dir + "/store"
        mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        var random = TestRandom(seed: 6000)
        let busybox = try XCTUnwrap(FileManager.default.contents(atPath: "/bin/busybox"))
        // Layer 1: a small system with every kind of member.
        var l1: [UInt8] = []
        var w1 = TarWriter { l1.append(contentsOf: $0) }
        let t: Int64 = 1_700_000_000
        try w1.writeEntry(TarEntry(path: "bin/", kind: .directory, mode: 0o755, mtime: t))
        try w1.writeEntry(TarEntry(path: "bin/busybox", kind: .regular, size: UInt64(busybox.count), mode: 0o755, mtime: t), content: Array(busybox))
        try w1.writeEntry(TarEntry(path: "bin/sh", kind: .symlink, mode: 0o777, mtime: t, linkTarget: "busybox"))
        try w1.writeEntry(TarEntry(path: "bin/cat", kind: .hardLink, mtime: t, linkTarget: "bin/busybox"))
        try w1.writeEntry(TarEntry(path: "etc/", kind: .directory, mode: 0o755, mtime: t))
        try w1.writeEntry(TarEntry(path: "etc/motd", kind: .regular, size: 6, mode: 0o644, mtime: t), content: Array("hello\n".utf8))
        try w1.writeEntry(TarEntry(path: "etc/shadow", kind: .regular, size: 5, mode: 0o640, uid: 0, gid: 42, mtime: t), content: Array("root\n".utf8))
        try w1.writeEntry(TarEntry(path: "etc/old.conf", kind: .regular, size: 4, mode: 0o644, mtime: t), content: Array("old\n".utf8))
        try w1.writeEntry(TarEntry(path: "var/", kind: .directory, mode: 0o755, mtime: t))
        try w1.writeEntry(TarEntry(path: "var/cache/", kind: .directory, mode: 0o700, uid: 1000, gid: 1000, mtime: t))
        try w1.writeEntry(TarEntry(path: "var/cache/a", kind: .regular, size: 2, mode: 0o600, uid: 1000, gid: 1000, mtime: t), content: Array("a\n".utf8))
        try w1.writeEntry(TarEntry(path: "dev/", kind: .directory, mode: 0o755, mtime: t))
        try w1.writeEntry(TarEntry(path: "dev/null", kind: .characterDevice, mode: 0o666, mtime: t, devMajor: 1, devMinor: 3))
        try w1.writeEntry(TarEntry(path: "tmp/", kind: .directory, mode: 0o1777, mtime: t))
        let big = random.bytes(3 << 20)
        try w1.writeEntry(TarEntry(path: "opt/data.bin", kind: .regular, size: UInt64(big.count), mode: 0o644, mtime: t), content: big)
        try w1.finish()
        // Layer 2: a whiteout, an opaque directory, a changed and a new file.
        var l2: [UInt8] = []
        var w2 = TarWriter { l2.append(contentsOf: $0) }
        try w2.writeEntry(TarEntry(path: "etc/.wh.old.conf", kind: .regular, mtime: t))
        try w2.writeEntry(TarEntry(path: "var/cache/", kind: .directory, mode: 0o755, uid: 1000, gid: 1000, mtime: t))
        try w2.writeEntry(TarEntry(path: "var/cache/.wh..wh..opq", kind: .regular, mtime: t))
        try w2.writeEntry(TarEntry(path: "var/cache/b", kind: .regular, size: 2, mode: 0o644, mtime: t), content: Array("b\n".utf8))
        try w2.writeEntry(TarEntry(path: "etc/motd", kind: .regular, size: 9, mode: 0o644, mtime: t), content: Array("welcome!\n".utf8))
        try w2.writeEntry(TarEntry(path: "app/run.sh", kind: .regular, size: 10, mode: 0o755, mtime: t), content: Array("echo run\n\n".utf8))
        try w2.finish()
        layerTars = [l1, l2]
        // The second layer is stored gzip-compressed, as most registries serve layers.
        let gz = try gzip(l2)
        image = ImageFixture(layers: [l1, gz], label: "fuse")
        try image.writeLayout(dir + "/layout", tag: "1.0")
        let store = try Store.create(at: root)
        _ = try ImageImporter(store: store, defaultName: "test/busybox").importImages(from: dir + "/layout")
        let r = try runBlobctl(["--store", root, "mount", mnt])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    override func tearDownWithError() throws {
        guard !mnt.isEmpty else { return }
        _ = try? runBlobctl(["umount", mnt])
    }

    func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let path = dir + "/gz-input"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-n", "-k", "-f", path]
        try p.run()
        p.waitUntilExit()
        return Array(try XCTUnwrap(FileManager.default.contents(atPath: path + ".gz")))
    }

    func sh(_ script: String) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testEveryBlobHashesToItsName() throws {
        // Reading the root file system first makes the gzip layer's plain tar a blob too.
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(mnt)/rootfs/test/busybox/1.0/etc/motd"))
        let (status, out) = try sh("cd '\(mnt)/blobs/sha256' && for f in *; do echo \"$f  $f\"; done | sha256sum -c --quiet - && ls | wc -l")
        XCTAssertEqual(status, 0, out)
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "5", "config, 2 layers, manifest, the gzip layer's tar")
    }

    func testSkopeoReadsTheImageLayout() throws {
        guard FileManager.default.fileExists(atPath: "/usr/bin/skopeo") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("skopeo missing") }
            throw XCTSkip("skopeo missing")
        }
        let (status, out) = try sh("skopeo copy oci:'\(mnt)/images/test/busybox/1.0' dir:'\(dir)/skopeo-out'")
        XCTAssertEqual(status, 0, out)
        let manifest = FileManager.default.contents(atPath: dir + "/skopeo-out/manifest.json")
        XCTAssertEqual(manifest, Data(image.manifest), "the manifest comes out byte for byte")
    }

    /// The merged root file system equals the layers extracted with tar and whiteouts
    /// applied by hand: names, kinds, modes, owners, sizes, link targets, contents.
    func testRootFileSystemEqualsExtractedLayers() throws {
        let expected = dir + "/expected"
        try FileManager.default.createDirectory(atPath: expected, withIntermediateDirectories: true)
        for (i, tar) in layerTars.enumerated() {
            let path = dir + "/layer\(i).tar"
            FileManager.default.createFile(atPath: path, contents: Data(tar))
            // Whiteouts of this layer apply to what is below before it is extracted.
            let (_, list) = try sh("tar -tf '\(path)'")
            for member in list.split(separator: "\n").map(String.init) {
                let name = (member as NSString).lastPathComponent
                let parent = (member as NSString).deletingLastPathComponent
                if name == ".wh..wh..opq" {
                    _ = try sh("find '\(expected)/\(parent)' -mindepth 1 -delete")
                } else if name.hasPrefix(".wh.") {
                    _ = try sh("rm -rf '\(expected)/\(parent)/\(name.dropFirst(4))'")
                }
            }
            let (status, out) = try sh("tar --numeric-owner -xpf '\(path)' -C '\(expected)' --exclude='.wh.*'")
            XCTAssertEqual(status, 0, out)
        }
        let format = "%P|%y|%m|%U|%G|%l|%n\\n"
        let merged = "\(mnt)/rootfs/test/busybox/1.0"
        let (s1, want) = try sh("cd '\(expected)' && find . -mindepth 1 -printf '\(format)' | sort")
        let (s2, got) = try sh("cd '\(merged)' && find . -mindepth 1 -printf '\(format)' | sort")
        XCTAssertEqual(s1, 0); XCTAssertEqual(s2, 0)
        XCTAssertEqual(got, want)
        let (s3, sums1) = try sh("cd '\(expected)' && find . -type f -exec sha256sum {} + | sort")
        let (s4, sums2) = try sh("cd '\(merged)' && find . -type f -exec sha256sum {} + | sort")
        XCTAssertEqual(s3, 0); XCTAssertEqual(s4, 0)
        XCTAssertEqual(sums2, sums1)
        XCTAssertTrue(got.contains("etc/motd|f|644|0|0||1"))
        XCTAssertFalse(got.contains("old.conf"), "whited out")
        XCTAssertFalse(got.contains("var/cache/a"), "hidden by the opaque directory")
        let (_, inodes) = try sh("stat -c %i '\(merged)/bin/cat' '\(merged)/bin/busybox' | uniq | wc -l")
        XCTAssertEqual(inodes.trimmingCharacters(in: .whitespacesAndNewlines), "1", "a hard link is one inode")
    }

    /// overlayfs with the merged tree as its lower layer: writes land in the upper layer,
    /// and a program from the image runs in a chroot.
    func testOverlayOnTopAndChroot() throws {
        let upper = dir + "/upper", work = dir + "/work", merged = dir + "/merged"
        for d in [upper, work, merged] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let lower = "\(mnt)/rootfs/test/busybox/1.0"
        var (status, out) = try sh("mount -t overlay overlay -o lowerdir='\(lower)',upperdir='\(upper)',workdir='\(work)' '\(merged)'")
        XCTAssertEqual(status, 0, out)
        defer { _ = try? sh("umount '\(merged)'") }
        (status, out) = try sh("chroot '\(merged)' /bin/sh -c 'cat /etc/motd; echo changed > /etc/motd; echo new > /tmp/file; /bin/cat /tmp/file'")
        XCTAssertEqual(status, 0, out)
        XCTAssertEqual(out, "welcome!\nnew\n")
        XCTAssertEqual(FileManager.default.contents(atPath: upper + "/etc/motd"), Data("changed\n".utf8), "the write went to the upper layer")
        XCTAssertEqual(FileManager.default.contents(atPath: lower + "/etc/motd"), Data("welcome!\n".utf8), "the image is untouched")
    }

    /// In the foreground, SIGTERM and SIGINT unmount cleanly and the process exits 0.
    func testSignalsUnmountCleanly() throws {
        for signal in [SIGTERM, SIGINT] {
            let point = dir + "/fg\(signal)"
            try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try blobctlPath())
            p.arguments = ["--store", root, "mount", point, "--foreground"]
            p.standardError = FileHandle.nullDevice
            try p.run()
            var mounted = false
            for _ in 0..<100 where !mounted {
                usleep(50_000)
                mounted = FileManager.default.fileExists(atPath: point + "/blobs")
            }
            XCTAssertTrue(mounted)
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "signal \(signal)")
            let (_, mounts) = try sh("grep -c ' \(point) ' /proc/self/mountinfo || true")
            XCTAssertEqual(mounts.trimmingCharacters(in: .whitespacesAndNewlines), "0", "unmounted after signal \(signal)")
        }
    }

    func testErrnosForUnknownPathsAndWrites() throws {
        XCTAssertEqual(open(mnt + "/rootfs/test/busybox/1.0/no-such-file", O_RDONLY), -1)
        XCTAssertEqual(errno, ENOENT)
        XCTAssertEqual(open(mnt + "/blobs/sha256/" + String(repeating: "0", count: 64), O_RDONLY), -1)
        XCTAssertEqual(errno, ENOENT)
        XCTAssertEqual(open(mnt + "/rootfs/test/busybox/1.0/etc/motd", O_WRONLY), -1)
        XCTAssertEqual(errno, EROFS)
        XCTAssertEqual(mkdir(mnt + "/rootfs/test/busybox/1.0/newdir", 0o755), -1)
        XCTAssertEqual(errno, EROFS)
        XCTAssertEqual(unlink(mnt + "/blobs/sha256/" + image.manifestDigest.hex), -1)
        XCTAssertEqual(errno, EROFS)
        XCTAssertEqual(open(mnt + "/images/nope/1", O_RDONLY), -1)
        XCTAssertEqual(errno, ENOENT)
    }

    /// Images come and go without remounting, and what the mount shows stays readable
    /// through a removal and a gc.
    func testImagesAppearAndMountedDataSurvivesGC() throws {
        let before = try XCTUnwrap(FileManager.default.contents(atPath: "\(mnt)/rootfs/test/busybox/1.0/opt/data.bin"))
        let store = try Store.open(at: root)
        try store.tagImage(ImageReference(parsing: "test/busybox:1.0"), as: ImageReference(parsing: "other:2"))
        usleep(1_200_000)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(mnt)/images/other/2/index.json"))
        try store.removeImage(ImageReference(parsing: "test/busybox:1.0"))
        try store.removeImage(ImageReference(parsing: "other:2"))
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(FileManager.default.contents(atPath: "\(mnt)/rootfs/test/busybox/1.0/opt/data.bin"), before,
                       "the mount holds what it showed")
        usleep(2_500_000) // the namespace refreshes each second; the kernel caches entries for one
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(mnt)/images/other/2"))
        // After unmount the references go, and gc collects the image.
        XCTAssertEqual(try runBlobctl(["umount", mnt]).status, 0)
        let report = try GarbageCollector(store: store).collect()
        XCTAssertGreaterThanOrEqual(report.blobsFreed, 4)
        XCTAssertEqual(try store.totals().blobs, 0)
    }

    /// A layer that is a decompression bomb costs its own image its root file system (EIO,
    /// logged once), not the mount: the mount comes up at once, other images and the bomb
    /// image's OCI layout stay readable, and a second look at the bomb answers at once.
    func testABombLayerFailsOnlyItsOwnRootFileSystem() throws {
        XCTAssertEqual(try runBlobctl(["umount", mnt]).status, 0)
        let bomb = try ImageFixture.zeroFilledLayer(megabytes: 512, compressor: "gzip -1", scratch: dir)
        try ImageFixture(layers: [bomb], label: "bomb").writeLayout(dir + "/bomb-layout", tag: "1")
        let store = try Store.open(at: root)
        _ = try ImageImporter(store: store, defaultName: "test/bomb").importImages(from: dir + "/bomb-layout")

        let started = Date()
        let r = try runBlobctl(["--store", root, "mount", mnt, "--log-file", dir + "/mount.log"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "mounting does not wait for layers to be indexed")
        XCTAssertEqual(FileManager.default.contents(atPath: "\(mnt)/rootfs/test/busybox/1.0/etc/motd"), Data("welcome!\n".utf8))
        XCTAssertNotNil(FileManager.default.contents(atPath: "\(mnt)/images/test/bomb/1/index.json"))
        XCTAssertEqual(try sh("ls '\(mnt)/rootfs/test'").1.split(separator: "\n").sorted(), ["bomb", "busybox"])

        var st = stat()
        XCTAssertEqual(stat("\(mnt)/rootfs/test/bomb/1/zeros", &st), -1)
        XCTAssertEqual(errno, EIO)
        let again = Date()
        XCTAssertEqual(stat("\(mnt)/rootfs/test/bomb/1", &st), -1)
        XCTAssertEqual(errno, EIO)
        XCTAssertLessThan(Date().timeIntervalSince(again), 0.5, "the failure is remembered, not decompressed again")
        let log = (try? String(contentsOfFile: dir + "/mount.log", encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("layerDecompression.maxRatio"), "the mount's log says why: \(log)")

        XCTAssertEqual(try runBlobctl(["umount", mnt]).status, 0)
        _ = try GarbageCollector(store: store).collect()
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
    }
}
