import BlobStore
import Foundation
import XCTest

final class TarExtractorTests: XCTestCase {
    private func tar(_ build: (inout TarWriter) throws -> Void) throws -> [UInt8] {
        let out = UncheckedBox([UInt8]())
        var writer = TarWriter { out.value.append(contentsOf: $0) }
        try build(&writer)
        try writer.finish()
        return out.value
    }

    private func extract(_ bytes: [UInt8], into dir: String) throws {
        try TarExtractor.extract(tarReader(bytes), into: dir)
    }

    /// Files, directories, symlinks and hard links come out with their content, modes and
    /// times; what `archiveDirectory` makes of the result is the same archive.
    func testRoundTrip() throws {
        let source = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 51)
        try FileManager.default.createDirectory(atPath: source + "/a/b", withIntermediateDirectories: true)
        try Data(random.bytes(300_000)).write(to: URL(fileURLWithPath: source + "/a/b/file"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: source + "/top"))
        chmod(source + "/top", 0o751)
        try FileManager.default.createSymbolicLink(atPath: source + "/a/link", withDestinationPath: "b/file")
        link(source + "/a/b/file", source + "/hard")
        let archive = UncheckedBox([UInt8]())
        try TarWriter.archiveDirectory(source) { archive.value.append(contentsOf: $0) }

        let target = try makeTemporaryDirectory(self)
        try extract(archive.value, into: target)
        XCTAssertEqual(FileManager.default.contents(atPath: target + "/a/b/file"), FileManager.default.contents(atPath: source + "/a/b/file"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/a/link"), "b/file")
        var st = stat(), hard = stat()
        XCTAssertEqual(stat(target + "/top", &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o751)
        XCTAssertEqual(stat(target + "/hard", &hard), 0)
        XCTAssertEqual(stat(target + "/a/b/file", &st), 0)
        XCTAssertEqual(hard.st_ino, st.st_ino, "a hard link, not a copy")
        let again = UncheckedBox([UInt8]())
        try TarWriter.archiveDirectory(target) { again.value.append(contentsOf: $0) }
        XCTAssertEqual(again.value.sha256, archive.value.sha256)
    }

    /// A member written through a symlink an earlier member made, or a hard link to a file
    /// outside, is refused; nothing appears outside the directory.
    func testNothingIsWrittenOutside() throws {
        let outside = try makeTemporaryDirectory(self)
        let throughSymlink = try tar { w in
            try w.writeEntry(TarEntry(path: "escape", kind: .symlink, linkTarget: outside))
            try w.writeEntry(TarEntry(path: "escape/owned", kind: .regular, size: 4), content: Array("evil".utf8))
        }
        let target = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try extract(throughSymlink, into: target)) { error in
            XCTAssertTrue("\(error)".contains("not a directory"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: outside + "/owned"))
        let hardLinkOut = try tar { w in
            try w.writeEntry(TarEntry(path: "escape", kind: .symlink, linkTarget: outside))
            try w.writeEntry(TarEntry(path: "grab", kind: .hardLink, linkTarget: "escape/secret"))
        }
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/secret"))
        XCTAssertThrowsError(try extract(hardLinkOut, into: try makeTemporaryDirectory(self)))
    }

    /// Layers applied in order: a whiteout removes a lower file or directory, an opaque
    /// directory keeps only what its own layer put in it, and a member replaces what was at
    /// its path (a file over a directory too).
    func testLayersApplyWhiteoutsAndOpaqueDirectories() throws {
        let root = try makeTemporaryDirectory(self)
        func file(_ w: inout TarWriter, _ path: String, _ text: String) throws {
            try w.writeEntry(TarEntry(path: path, kind: .regular, size: UInt64(text.utf8.count), mode: 0o644, mtime: 1), content: Array(text.utf8))
        }
        func dir(_ w: inout TarWriter, _ path: String) throws { try w.writeEntry(TarEntry(path: path, kind: .directory, mode: 0o755, mtime: 1)) }
        let lower = try tar { w in
            try dir(&w, "etc/"); try file(&w, "etc/keep", "lower"); try file(&w, "etc/gone", "x")
            try dir(&w, "opaque/"); try file(&w, "opaque/old", "x")
            try dir(&w, "becomes-file/"); try file(&w, "becomes-file/inner", "x")
            try dir(&w, "tree/sub/"); try file(&w, "tree/sub/deep", "x")
        }
        let upper = try tar { w in
            try file(&w, "etc/.wh.gone", "")
            try file(&w, "etc/keep", "upper")
            try dir(&w, "opaque/"); try file(&w, "opaque/.wh..wh..opq", ""); try file(&w, "opaque/new", "y")
            try file(&w, "becomes-file", "now a file")
            try file(&w, ".wh.tree", "")
        }
        try TarExtractor.extract(tarReader(lower), into: root, asLayer: true)
        try TarExtractor.extract(tarReader(upper), into: root, asLayer: true)
        let fm = FileManager.default
        XCTAssertEqual(try String(contentsOfFile: root + "/etc/keep", encoding: .utf8), "upper")
        XCTAssertFalse(fm.fileExists(atPath: root + "/etc/gone"))
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: root + "/opaque"), ["new"])
        XCTAssertEqual(try String(contentsOfFile: root + "/becomes-file", encoding: .utf8), "now a file")
        XCTAssertFalse(fm.fileExists(atPath: root + "/tree"))
        XCTAssertFalse(try fm.subpathsOfDirectory(atPath: root).contains { $0.contains(".wh.") }, "no whiteout is left as a file")
    }

    /// An overlayfs upper directory archives as the image layer it stands for (whiteouts as
    /// `.wh.` members, the opaque mark as `.wh..wh..opq`, other extended attributes kept,
    /// overlayfs's own not) and unpacks back into the same upper directory.
    func testOverlayUpperRoundTrip() throws {
        guard getuid() == 0 else { throw XCTSkip("whiteouts (mknod) and trusted.* attributes need root") }
        let upper = try makeTemporaryDirectory(self)
        try FileManager.default.createDirectory(atPath: upper + "/opaque/inner", withIntermediateDirectories: true)
        try Data("kept".utf8).write(to: URL(fileURLWithPath: upper + "/opaque/file"))
        try Data("tagged".utf8).write(to: URL(fileURLWithPath: upper + "/tagged"))
        XCTAssertEqual(mknod(upper + "/deleted", S_IFCHR, 0), 0)
        func attributes(_ path: String) throws -> [String: [UInt8]] {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            return try ExtendedAttributes.read(fd, path: path)
        }
        func setAttribute(_ path: String, _ name: String, _ value: String) throws {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            try ExtendedAttributes.write(fd, name, Array(value.utf8), path: path)
        }
        try setAttribute(upper + "/opaque", "trusted.overlay.opaque", "y")
        try setAttribute(upper + "/opaque", "trusted.overlay.origin", "xx")
        try setAttribute(upper + "/tagged", "user.origin", "test")
        let archive = UncheckedBox([UInt8]())
        try TarWriter.archiveDirectory(upper, overlayUpper: true) { archive.value.append(contentsOf: $0) }

        let reader = tarReader(archive.value)
        var members: [String: TarEntry] = [:]
        while let entry = try reader.next() { members[entry.path] = entry }
        XCTAssertEqual(Set(members.keys), [".wh.deleted", "opaque/", "opaque/.wh..wh..opq", "opaque/file", "opaque/inner/", "tagged"])
        XCTAssertEqual(members["tagged"]?.xattrs, ["user.origin": Array("test".utf8)])
        XCTAssertEqual(members["opaque/"]?.xattrs, [:], "overlayfs's own attributes stay out of the layer")

        let target = try makeTemporaryDirectory(self)
        try TarExtractor.extract(tarReader(archive.value), into: target, overlayUpper: true)
        var st = stat()
        XCTAssertEqual(lstat(target + "/deleted", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(st.st_rdev, 0)
        XCTAssertEqual(try attributes(target + "/opaque"), ["trusted.overlay.opaque": Array("y".utf8)])
        XCTAssertEqual(try attributes(target + "/tagged"), ["user.origin": Array("test".utf8)])
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + "/opaque/.wh..wh..opq"))
        let again = UncheckedBox([UInt8]())
        try TarWriter.archiveDirectory(target, overlayUpper: true) { again.value.append(contentsOf: $0) }
        XCTAssertEqual(again.value, archive.value, "the unpacked upper directory archives to the same layer")
    }
}
