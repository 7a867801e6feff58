import BlobStore
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class TarTests: XCTestCase {
    // MARK: Writer to reader

    func testRoundTripsEveryKind() throws {
        var random = TestRandom(seed: 1)
        let data = random.bytes(3000)
        let other = random.text(700)
        let members: [(TarEntry, [UInt8])] = [
            (TarEntry(path: "d/", kind: .directory, mode: 0o750, uid: 1000, gid: 1001, mtime: 1_700_000_000, uname: "app", gname: "staff"), []),
            (TarEntry(path: "d/file", kind: .regular, size: 3000, mode: 0o4755, uid: 7, gid: 8, mtime: 1_600_000_000), data),
            (TarEntry(path: "d/empty", kind: .regular), []),
            (TarEntry(path: "d/abs-link", kind: .symlink, mode: 0o777, linkTarget: "/etc/passwd"), []),
            (TarEntry(path: "d/up-link", kind: .symlink, mode: 0o777, linkTarget: "../../outside"), []),
            (TarEntry(path: "d/hard", kind: .hardLink, linkTarget: "d/file"), []),
            (TarEntry(path: "d/null", kind: .characterDevice, mode: 0o666, devMajor: 1, devMinor: 3), []),
            (TarEntry(path: "d/sda", kind: .blockDevice, mode: 0o660, devMajor: 8, devMinor: 0), []),
            (TarEntry(path: "d/fifo", kind: .fifo, mode: 0o600), []),
            (TarEntry(path: "d/dump", kind: .other(UInt8(ascii: "D")), size: 700), other),
        ]
        let archive = try makeArchive { writer in
            for (entry, content) in members { try writer.writeEntry(entry, content: content) }
        }
        XCTAssertEqual(archive.count % 512, 0)
        // Odd read sizes exercise headers and data split across reads.
        for maxRead in [Int.max, 700, 1] {
            let reader = makeReader(archive, maxRead: maxRead)
            var index = 0
            while let entry = try reader.next() {
                XCTAssertEqual(entry, members[index].0, "member \(index)")
                let content = try reader.readContent(maxSize: 1 << 20)
                XCTAssertEqual(content, members[index].1, "content of \(entry.path)")
                // `offset` points at the member's data in the stream.
                XCTAssertEqual(Array(archive[Int(reader.offset)..<Int(reader.offset) + content.count]), content)
                index += 1
            }
            XCTAssertEqual(index, members.count)
        }
    }

    func testLongNamesLargeIDsAndXattrsGoThroughPAX() throws {
        let splittable = String(repeating: "a", count: 60) + "/" + String(repeating: "b", count: 80)   // ustar prefix
        let longComponent = "dir/" + String(repeating: "c", count: 120)
        let veryLong = (0..<6).map { _ in String(repeating: "e", count: 50) }.joined(separator: "/") + "/file.txt"
        XCTAssertGreaterThan(veryLong.utf8.count, 255)
        let longTarget = String(repeating: "t/", count: 100) + "target"
        let members: [(TarEntry, [UInt8])] = [
            (TarEntry(path: splittable, kind: .regular, size: 3), Array("abc".utf8)),
            (TarEntry(path: longComponent, kind: .regular, size: 4), Array("long".utf8)),
            (TarEntry(path: veryLong, kind: .regular, size: 1), [42]),
            (TarEntry(path: "link", kind: .symlink, linkTarget: longTarget), []),
            (TarEntry(path: "hard", kind: .hardLink, linkTarget: veryLong), []),
            (TarEntry(path: "big-ids", kind: .regular, uid: 3_000_000_000, gid: 2_097_152,
                      uname: String(repeating: "u", count: 40), gname: "g"), []),
            (TarEntry(path: "times", kind: .regular, mtime: 1_700_000_000, mtimeNanoseconds: 123_456_789), []),
            (TarEntry(path: "old", kind: .regular, mtime: -5, mtimeNanoseconds: 250_000_000), []),
            (TarEntry(path: "xattrs", kind: .regular, size: 2,
                      xattrs: ["user.comment": Array("hello".utf8), "security.capability": [0, 0xff, 1, 0x80, 10]],
                      paxRecords: ["atime": "1.5", "LIBARCHIVE.creationtime": "7"]), [1, 2]),
            (TarEntry(path: "ünïcödé/名前", kind: .regular), []),
        ]
        let archive = try makeArchive { writer in
            for (entry, content) in members { try writer.writeEntry(entry, content: content) }
        }
        let read = try readAll(archive)
        XCTAssertEqual(read.map(\.0), members.map(\.0))
        XCTAssertEqual(read.map(\.1), members.map(\.1))

        // GNU tar reads the same names and link targets.
        let dir = try makeTemporaryDirectory(self)
        let path = dir + "/pax.tar"
        try Data(archive).write(to: URL(fileURLWithPath: path))
        let listing = try runTar(["-tf", path])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertEqual(listing.stdout.split(separator: "\n").map(String.init), members.map(\.0.path))
        let verbose = try runTar(["-tvf", path, "--numeric-owner"])
        XCTAssertTrue(verbose.stdout.contains("-> " + longTarget), verbose.stdout)
        XCTAssertTrue(verbose.stdout.contains("3000000000/2097152"), verbose.stdout)
    }

    func testHugeSizeUsesPAXAndTruncatedDataIsReported() throws {
        let size: UInt64 = 9 << 30 // beyond ustar's 8 GiB
        final class Output { var bytes: [UInt8] = [] }
        let output = Output()
        var writer = TarWriter { output.bytes.append(contentsOf: $0) }
        try writer.beginEntry(TarEntry(path: "huge.img", kind: .regular, size: size))
        try [UInt8](repeating: 7, count: 4096).withUnsafeBytes { try writer.writeContent($0) }
        try writer.flush()
        let archive = output.bytes
        XCTAssertEqual(archive.count, 3 * 512 + 4096, "a PAX header block, its records, the ustar header, the data")
        let reader = makeReader(archive)
        let entry = try XCTUnwrap(try reader.next())
        XCTAssertEqual(entry.size, size)
        var seen = 0
        assertTarError(contains: ["truncated", "huge.img"]) {
            try reader.readContent { seen += $0.count }
        }
        XCTAssertEqual(seen, 4096)
    }

    func testStreamsContentInBoundedPieces() throws {
        var random = TestRandom(seed: 2)
        let big = random.bytes(3 << 20 + 123)
        let archive = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "skipped", kind: .regular, size: UInt64(big.count)), content: big)
            try writer.writeEntry(TarEntry(path: "big", kind: .regular, size: UInt64(big.count)), content: big)
            try writer.writeEntry(TarEntry(path: "after", kind: .regular, size: 5), content: Array("after".utf8))
        }
        let reader = makeReader(archive)
        XCTAssertEqual(try reader.next()?.path, "skipped") // content never read: skipped by next()
        XCTAssertEqual(try reader.next()?.path, "big")
        XCTAssertEqual(reader.offset, 512 + UInt64(big.count + 512 - big.count % 512) + 512)
        var pieces = 0
        var hasher = SHA256Hasher()
        try reader.readContent { piece in
            XCTAssertLessThanOrEqual(piece.count, 1 << 20)
            pieces += 1
            hasher.update(piece)
        }
        XCTAssertGreaterThanOrEqual(pieces, 4)
        XCTAssertEqual(hasher.finalize(), big.sha256)
        try reader.readContent { _ in XCTFail("content is read only once") }
        XCTAssertEqual(try reader.next()?.path, "after")
        XCTAssertEqual(try reader.readContent(maxSize: 100), Array("after".utf8))
        XCTAssertNil(try reader.next())
        XCTAssertNil(try reader.next())
    }

    func testReadsFromAFileDescriptor() throws {
        let dir = try makeTemporaryDirectory(self)
        let archive = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "x", kind: .regular, size: 2), content: [1, 2])
        }
        try Data(archive).write(to: URL(fileURLWithPath: dir + "/a.tar"))
        let fd = open(dir + "/a.tar", O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let reader = TarReader(fileDescriptor: fd)
        XCTAssertEqual(try reader.next()?.path, "x")
        XCTAssertEqual(try reader.readContent(maxSize: 10), [1, 2])
        XCTAssertNil(try reader.next())
    }

    func testHeaderNumbersAndPAXRecords() throws {
        // Negative numbers and numbers too big for octal go base-256, as GNU tar writes them.
        for mtime: Int64 in [0, 1_700_000_000, -1000, 1 << 40, Int64.min / 2] {
            for uid: Int64 in [0, 0o7777777, 0o7777777 + 1, 1 << 40] {
                let header = TarHeader(name: "n", mode: 0o644, uid: uid, gid: 5, size: 1 << 36, mtime: mtime, typeflag: UInt8(ascii: "0"))
                var block = [UInt8](repeating: 0, count: 512)
                block.withUnsafeMutableBytes { header.encode(into: $0) }
                try block.withUnsafeBytes { raw in
                    XCTAssertTrue(TarHeader.checksumMatches(raw))
                    XCTAssertEqual(try TarHeader(parsing: raw), header)
                }
            }
        }
        // Record lengths that carry into another digit.
        for count in 0..<1200 {
            let records = [(key: "k", value: [UInt8](repeating: 0x61, count: count)), (key: "SCHILY.xattr.x", value: [0, 10, 61])]
            let parsed = try XCTUnwrap(PAXRecords.parse(PAXRecords.encode(records)))
            XCTAssertEqual(parsed.map(\.key), records.map(\.key))
            XCTAssertEqual(parsed.map(\.value), records.map(\.value))
        }
        XCTAssertNil(PAXRecords.parse(Array("5 a=b\n".utf8)))
        XCTAssertNil(PAXRecords.parse(Array("99 a=b\n".utf8)))
        XCTAssertTrue(PAXRecords.parseTime(Array("-1.25".utf8))! == (-2, 750_000_000))
        XCTAssertEqual(PAXRecords.formatTime(seconds: -2, nanoseconds: 750_000_000), "-1.25")
        XCTAssertEqual(PAXRecords.formatTime(seconds: -1, nanoseconds: 500_000_000), "-0.5")
        XCTAssertTrue(PAXRecords.parseTime(Array("-0.5".utf8))! == (-1, 500_000_000))
    }

    // MARK: Archives made by GNU tar

    func testReadsArchivesMadeByGNUTar() throws {
        let root = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 3)
        let splittable = "dir/" + String(repeating: "y", count: 60) + "/" + String(repeating: "z", count: 80)
        let longName = "dir/" + String(repeating: "x", count: 150)
        let files: [String: [UInt8]] = [
            "dir/a.txt": Array("hello tar\n".utf8),
            "dir/b.bin": random.bytes(100_000),
            "dir/empty": [],
            splittable: random.text(2000),
            longName: random.text(1500),
        ]
        try FileManager.default.createDirectory(atPath: root + "/dir/" + String(repeating: "y", count: 60), withIntermediateDirectories: true)
        for (name, content) in files { try writeFile(root + "/" + name, content) }
        XCTAssertEqual(symlink("a.txt", root + "/dir/s"), 0)
        XCTAssertEqual(link(root + "/dir/b.bin", root + "/dir/h"), 0)

        for format in ["gnu", "pax", "ustar"] {
            var arguments = ["--format=\(format)", "--sort=name", "-cf", root + "/\(format).tar", "-C", root]
            if format == "ustar" {
                arguments += ["--exclude", "xxxxxxxx*"]
            } else {
                arguments += ["--owner=big:3000000000", "--group=big:3000000001"]
            }
            let result = try runTar(arguments + ["dir"])
            XCTAssertEqual(result.status, 0, result.stderr)

            let archive = try Array(Data(contentsOf: URL(fileURLWithPath: root + "/\(format).tar")))
            let members = try readAll(archive, maxRead: 3000)
            var expected = files
            if format == "ustar" { expected[longName] = nil }
            var seen: Set<String> = []
            for (entry, content) in members {
                seen.insert(entry.path)
                if format != "ustar" {
                    XCTAssertEqual(entry.uid, 3_000_000_000, "\(format) \(entry.path)")
                    XCTAssertEqual(entry.gid, 3_000_000_001, "\(format) \(entry.path)")
                }
                switch entry.path {
                case "dir/s":
                    XCTAssertEqual(entry.kind, .symlink)
                    XCTAssertEqual(entry.linkTarget, "a.txt")
                case "dir/h":
                    XCTAssertEqual(entry.kind, .hardLink, format)
                    XCTAssertEqual(entry.linkTarget, "dir/b.bin")
                case _ where entry.path.hasSuffix("/"):
                    XCTAssertEqual(entry.kind, .directory)
                default:
                    XCTAssertEqual(entry.kind, .regular, entry.path)
                    XCTAssertEqual(content, expected[entry.path], "\(format) \(entry.path)")
                    XCTAssertEqual(entry.size, UInt64(content.count))
                }
            }
            for name in expected.keys { XCTAssertTrue(seen.contains(name), "\(format) archive has \(name.prefix(30))") }
            XCTAssertTrue(seen.isSuperset(of: ["dir/", "dir/s", "dir/h"]), format)
        }
    }

    // MARK: Directory trees

    func testArchiveDirectoryIsReadableAndExtractableByGNUTar() throws {
        let base = try makeTemporaryDirectory(self)
        let root = base + "/tree"
        let fixture = try makeTree(at: root)
        var archive: [UInt8] = []
        try TarWriter.archiveDirectory(root) { archive.append(contentsOf: $0) }

        // Our reader: sorted, relative, directories with a slash, one copy of linked data.
        let members = try readAll(archive)
        let paths = members.map(\.0.path)
        XCTAssertEqual(paths, paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        XCTAssertTrue(paths.starts(with: ["a-b", "a/", "a/x", "bin/", "bin/tool", "bin/tool-hard"]), "\(paths.prefix(6))")
        for (entry, _) in members {
            XCTAssertFalse(entry.path.hasPrefix("./") || entry.path.hasPrefix("/"), entry.path)
            XCTAssertEqual(entry.path.hasSuffix("/"), entry.kind == .directory, entry.path)
        }
        let byPath = Dictionary(uniqueKeysWithValues: members.map { ($0.0.path, $0) })
        XCTAssertEqual(byPath["bin/tool-hard"]?.0.kind, .hardLink)
        XCTAssertEqual(byPath["bin/tool-hard"]?.0.linkTarget, "bin/tool")
        XCTAssertEqual(byPath["etc/link"]?.0.linkTarget, "/etc/passwd")
        XCTAssertEqual(byPath["etc/secret"]?.0.mode, 0o600)
        XCTAssertEqual(byPath["run/fifo"]?.0.kind, .fifo)
        XCTAssertEqual(byPath[fixture.deepPath]?.1, fixture.files[fixture.deepPath])
        if fixture.hasDevice {
            XCTAssertEqual(byPath["dev/null"]?.0.kind, .characterDevice)
            XCTAssertEqual(byPath["dev/null"]?.0.devMajor, 1)
            XCTAssertEqual(byPath["dev/null"]?.0.devMinor, 3)
        }

        // GNU tar lists and extracts it.
        let tarPath = base + "/tree.tar"
        try Data(archive).write(to: URL(fileURLWithPath: tarPath))
        let listing = try runTar(["-tvf", tarPath])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertEqual(listing.stdout.split(separator: "\n").count, members.count)
        let copy = base + "/copy"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        let extract = try runTar(["-xpf", tarPath, "-C", copy])
        XCTAssertEqual(extract.status, 0, extract.stderr)
        for (name, content) in fixture.files {
            XCTAssertEqual(try Array(Data(contentsOf: URL(fileURLWithPath: copy + "/" + name))), content, name)
            XCTAssertEqual(try lstatPath(copy + "/" + name).st_mode & 0o7777, try lstatPath(root + "/" + name).st_mode & 0o7777, name)
        }
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: copy + "/etc/link"), "/etc/passwd")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: copy + "/etc/rel"), "passwd")
        XCTAssertEqual(try lstatPath(copy + "/bin/tool").st_ino, try lstatPath(copy + "/bin/tool-hard").st_ino)
        XCTAssertEqual(try lstatPath(copy + "/run/fifo").st_mode & S_IFMT, S_IFIFO)
        XCTAssertEqual(try lstatPath(copy + "/empty").st_mode & 0o7777, 0o700)

        // The extracted copy (other inodes, same metadata) archives to the same bytes.
        var again: [UInt8] = []
        try TarWriter.archiveDirectory(copy) { again.append(contentsOf: $0) }
        XCTAssertEqual(again.count, archive.count)
        XCTAssertTrue(again == archive, "an extracted copy archives to the same bytes")
    }

    func testArchiveDirectoryIsDeterministic() throws {
        let base = try makeTemporaryDirectory(self)
        _ = try makeTree(at: base + "/tree")
        var first: [UInt8] = [], second: [UInt8] = []
        try TarWriter.archiveDirectory(base + "/tree") { first.append(contentsOf: $0) }
        try TarWriter.archiveDirectory(base + "/tree") { second.append(contentsOf: $0) }
        XCTAssertFalse(first.isEmpty)
        XCTAssertTrue(first == second)
        assertTarError(code: .notFound, contains: ["missing"]) {
            try TarWriter.archiveDirectory(base + "/missing") { _ in }
        }
    }

    // MARK: Hostile and damaged input

    func testRejectsUnsafeNames() throws {
        let hostile = ["../x", "/abs", "a/../../b", "a/b/..", "..", "a\0b", "./../x"]
        for name in hostile {
            let archive = try makeArchive { writer in
                try writer.writeEntry(TarEntry(path: "fine", kind: .regular, size: 1), content: [1])
                try writer.writeEntry(TarEntry(path: name, kind: .regular, size: 1), content: [2])
            }
            let reader = makeReader(archive)
            XCTAssertEqual(try reader.next()?.path, "fine")
            assertTarError(contains: ["unsafe", String(String(reflecting: name).dropFirst().dropLast())]) {
                _ = try reader.next()
            }
            // Without validation the name comes through as archived.
            let lenient = makeReader(archive, validatePaths: false)
            _ = try lenient.next()
            XCTAssertEqual(try lenient.next()?.path, name)
        }
        let empty = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "fine", kind: .regular))
            try writer.writeEntry(TarEntry(path: "", kind: .regular))
        }
        assertTarError(contains: ["empty name", "after member \"fine\""]) { _ = try readAll(empty) }

        for target in ["/etc/passwd", "../etc/passwd", "a/../../etc/shadow"] {
            let archive = try makeArchive { writer in
                try writer.writeEntry(TarEntry(path: "innocent", kind: .hardLink, linkTarget: target))
            }
            assertTarError(contains: ["innocent", target]) { _ = try readAll(archive) }
        }
        // Symlinks may point anywhere: they resolve inside the rootfs.
        let links = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "l1", kind: .symlink, linkTarget: "/etc/passwd"))
            try writer.writeEntry(TarEntry(path: "l2", kind: .symlink, linkTarget: "../../../x"))
        }
        XCTAssertEqual(try readAll(links).map(\.0.linkTarget), ["/etc/passwd", "../../../x"])
        let nulLink = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "l3", kind: .symlink, linkTarget: "a\0b"))
        }
        assertTarError(contains: ["l3", "NUL"]) { _ = try readAll(nulLink) }

        // A GNU long name hiding a NUL.
        let root = try makeTemporaryDirectory(self)
        let longName = String(repeating: "q", count: 130)
        try writeFile(root + "/" + longName, [1])
        XCTAssertEqual(try runTar(["--format=gnu", "-cf", root + "/g.tar", "-C", root, longName]).status, 0)
        var gnu = try Array(Data(contentsOf: URL(fileURLWithPath: root + "/g.tar")))
        gnu[512 + 10] = 0 // inside the 'L' record's data
        assertTarError(contains: ["NUL"]) { _ = try readAll(gnu) }
    }

    func testRejectsTruncatedArchives() throws {
        var random = TestRandom(seed: 4)
        let longName = String(repeating: "p", count: 180)
        let archive = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "first", kind: .regular, size: 1000), content: random.bytes(1000))
            try writer.writeEntry(TarEntry(path: "second", kind: .regular, size: 5000), content: random.bytes(5000))
            try writer.writeEntry(TarEntry(path: longName, kind: .regular, size: 10), content: random.bytes(10))
        }
        let secondHeader = 512 + 1024
        let thirdHeader = secondHeader + 512 + 5120
        // Inside the data of "second": while reading it, and while skipping it.
        let cutData = Array(archive[..<(secondHeader + 512 + 2000)])
        let reader = makeReader(cutData)
        _ = try reader.next()
        XCTAssertEqual(try reader.next()?.path, "second")
        assertTarError(contains: ["truncated", "\"second\"", "2000 of 5000"]) { try reader.readContent { _ in } }
        assertTarError(contains: ["truncated", "\"second\""]) { _ = try readAll(cutData, readContent: false) }
        // Inside the padding after "second".
        assertTarError(contains: ["truncated", "padding", "\"second\""]) { _ = try readAll(Array(archive[..<(thirdHeader - 100)])) }
        // Inside a header: the second one, and the PAX header of the long name.
        assertTarError(contains: ["truncated", "header", "second", "after member \"first\""]) {
            _ = try readAll(Array(archive[..<(secondHeader + 300)]))
        }
        assertTarError(contains: ["truncated", "after member \"second\""]) { _ = try readAll(Array(archive[..<(thirdHeader + 700)])) }
        assertTarError(contains: ["truncated", "after member \"second\""]) { _ = try readAll(Array(archive[..<(thirdHeader + 1024 + 200)])) }

        // A missing end marker at a member boundary is accepted, as GNU tar does.
        XCTAssertEqual(try readAll(Array(archive[..<thirdHeader])).map(\.0.path), ["first", "second"])
        let unterminated = makeReader(Array(archive[..<thirdHeader]))
        while try unterminated.next() != nil {}
        XCTAssertFalse(unterminated.sawEndMarker)
        let complete = makeReader(archive)
        while try complete.next() != nil {}
        XCTAssertTrue(complete.sawEndMarker)
        XCTAssertEqual(try readAll(Array(archive[..<(archive.count - 512)])).count, 3)
        XCTAssertEqual(try readAll(Array(archive[..<(archive.count - 1024)])).count, 3)
        // A lone zero block followed by more data is not.
        var lone = Array(archive[..<thirdHeader])
        lone += [UInt8](repeating: 0, count: 512) + archive[thirdHeader...]
        assertTarError(contains: ["zero block"]) { _ = try readAll(lone) }
        // Trailing bytes after the end marker (GNU tar's record padding) are ignored.
        XCTAssertEqual(try readAll(archive + [UInt8](repeating: 0, count: 9216) + [1, 2, 3]).count, 3)
    }

    func testRejectsInputThatIsNotTar() throws {
        var random = TestRandom(seed: 5)
        assertTarError(contains: ["not a tar archive"]) { _ = try readAll(random.bytes(8192)) }
        assertTarError(contains: ["not a tar archive"]) { _ = try readAll(Array("{\"schemaVersion\": 2}\n".utf8)) }
        var text = random.text(4096)
        text[148] = UInt8(ascii: "1") // no accidental checksum
        assertTarError(contains: ["not a tar archive"]) { _ = try readAll(text) }
        assertTarError(contains: ["not a tar archive", "empty"]) { _ = try readAll([]) } // as GNU tar says
        XCTAssertEqual(try readAll([UInt8](repeating: 0, count: 1024)).count, 0) // an empty archive

        // A damaged later header is named by position and by the member before it.
        var archive = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "one", kind: .regular, size: 3), content: [1, 2, 3])
            try writer.writeEntry(TarEntry(path: "two", kind: .regular, size: 3), content: [4, 5, 6])
        }
        archive[1024 + 5] ^= 0x20
        assertTarError(contains: ["checksum", "after member \"one\""]) { _ = try readAll(archive) }
    }

    func testRejectsMalformedNumbers() throws {
        var archive = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "member", kind: .regular, size: 3), content: [1, 2, 3])
        }
        // A size field with a non-octal digit, checksum recomputed so only the field is wrong.
        archive[124] = UInt8(ascii: "9")
        fixChecksum(&archive, header: 0)
        assertTarError(contains: ["member", "size"]) { _ = try readAll(archive) }
        // A negative base-256 size.
        for i in 124..<136 { archive[i] = 0xff }
        fixChecksum(&archive, header: 0)
        assertTarError(contains: ["member", "negative size"]) { _ = try readAll(archive) }
        // A PAX size that is not a number.
        let pax = try makeArchive { writer in
            try writer.writeEntry(TarEntry(path: "m", kind: .regular, paxRecords: ["abc": "def"]))
        }
        var patched = pax
        let record = Array("11 abc=def\n".utf8)
        let at = try XCTUnwrap((512..<1024).first { Array(pax[$0..<($0 + record.count)]) == record })
        patched.replaceSubrange(at..<(at + record.count), with: Array("11 size=-x\n".utf8))
        assertTarError(contains: ["\"m\"", "PAX size"]) { _ = try readAll(patched) }
    }

    func testWriterChecksContentLength() throws {
        var writer = TarWriter { _ in }
        assertTarError(contains: ["short", "4 bytes of content"]) {
            try writer.writeEntry(TarEntry(path: "short", kind: .regular, size: 5), content: [1, 2, 3, 4])
        }
        var pulled = TarWriter { _ in }
        assertTarError(contains: ["pulled", "ended after 2 of 5"]) {
            var given = false
            try pulled.writeEntry(TarEntry(path: "pulled", kind: .regular, size: 5)) { buffer in
                if given { return 0 }
                given = true
                buffer[0] = 1
                buffer[1] = 2
                return 2
            }
        }
        var xattr = TarWriter { _ in }
        assertTarError(contains: ["x", "a=b"]) {
            try xattr.writeEntry(TarEntry(path: "x", kind: .regular, xattrs: ["a=b": [1]]))
        }
        var dir = TarWriter { _ in }
        assertTarError(contains: ["d/", "no content"]) {
            try dir.writeEntry(TarEntry(path: "d/", kind: .directory, size: 10))
        }
    }

    // MARK: Helpers

    private func makeArchive(_ body: (inout TarWriter) throws -> Void) throws -> [UInt8] {
        final class Output { var bytes: [UInt8] = [] }
        let output = Output()
        var writer = TarWriter { output.bytes.append(contentsOf: $0) }
        try body(&writer)
        try writer.finish()
        return output.bytes
    }

    /// A reader over `bytes` that hands out at most `maxRead` bytes per call (at random below).
    private func makeReader(_ bytes: [UInt8], maxRead: Int = .max, validatePaths: Bool = true) -> TarReader {
        var position = 0
        var random = TestRandom(seed: UInt64(bytes.count))
        return TarReader(validatePaths: validatePaths) { buffer in
            let limit = maxRead == .max ? buffer.count : 1 + Int(random.next() % UInt64(maxRead))
            let n = min(buffer.count, bytes.count - position, limit)
            bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[position..<(position + n)])) }
            position += n
            return n
        }
    }

    private func readAll(_ bytes: [UInt8], maxRead: Int = .max, readContent: Bool = true) throws -> [(TarEntry, [UInt8])] {
        let reader = makeReader(bytes, maxRead: maxRead)
        var out: [(TarEntry, [UInt8])] = []
        while let entry = try reader.next() {
            out.append((entry, readContent ? try reader.readContent(maxSize: 1 << 24) : []))
        }
        return out
    }

    private func assertTarError(code: BlobStoreError.Code = .invalidArgument, contains parts: [String],
                                file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? BlobStoreError else {
                return XCTFail("not a BlobStoreError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(error.code, code, error.message, file: file, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "\"\(error.message)\" should mention \(part)", file: file, line: line)
            }
        }
    }

    private func fixChecksum(_ archive: inout [UInt8], header: Int) {
        for i in 148..<156 { archive[header + i] = UInt8(ascii: " ") }
        let sum = archive[header..<(header + 512)].reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        let field = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits + [0, UInt8(ascii: " ")]
        archive.replaceSubrange((header + 148)..<(header + 156), with: field)
    }

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    private func lstatPath(_ path: String) throws -> stat {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw BlobStoreError(.io, "lstat \(path)") }
        return st
    }

    private struct Tree {
        var files: [String: [UInt8]]
        var deepPath: String
        var hasDevice: Bool
    }

    /// A small tree with one of everything: modes, links, a fifo, long names, a device when
    /// the test may create one.
    private func makeTree(at root: String) throws -> Tree {
        var random = TestRandom(seed: 6)
        let deepDir = (0..<5).map { _ in String(repeating: "d", count: 50) }.joined(separator: "/")
        let deepPath = "long/" + deepDir + "/file"
        let files: [String: [UInt8]] = [
            "a-b": Array("dash".utf8),
            "a/x": Array("x".utf8),
            "bin/tool": random.bytes(70_000),
            "etc/passwd": Array("root:x:0:0:root:/root:/bin/sh\n".utf8),
            "etc/secret": random.bytes(10),
            "long/" + String(repeating: "n", count: 120): random.text(300),
            deepPath: random.text(100),
        ]
        let fm = FileManager.default
        for dir in ["a", "bin", "etc", "empty", "run", "dev", "long/" + deepDir] {
            try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        for (name, content) in files { try writeFile(root + "/" + name, content) }
        chmod(root + "/bin/tool", 0o755)
        chmod(root + "/etc/secret", 0o600)
        chmod(root + "/empty", 0o700)
        XCTAssertEqual(link(root + "/bin/tool", root + "/bin/tool-hard"), 0)
        XCTAssertEqual(symlink("/etc/passwd", root + "/etc/link"), 0)
        XCTAssertEqual(symlink("passwd", root + "/etc/rel"), 0)
        XCTAssertEqual(mkfifo(root + "/run/fifo", 0o644), 0)
        let hasDevice = mknod(root + "/dev/null", S_IFCHR | 0o666, 0x103) == 0 // makedev(1, 3)
        // Fixed times, so a copy extracted elsewhere archives to the same bytes.
        for path in try fm.subpathsOfDirectory(atPath: root) {
            var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 0), timespec(tv_sec: 1_600_000_000, tv_nsec: 0)]
            utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW)
        }
        return Tree(files: files, deepPath: deepPath, hasDevice: hasDevice)
    }

    @discardableResult
    private func runTar(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") ? "/usr/bin/tar" : "/bin/tar")
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// Archiving a directory another user can write to: swapping a subdirectory for a
    /// symlink to an outside directory while the archive is made never puts the outside
    /// file's bytes into the archive (the archive may fail instead: the tree changed).
    func testArchiveDirectoryNeverFollowsASwappedInSymlink() throws {
        let base = try makeTemporaryDirectory(self)
        let tree = base + "/tree", outside = base + "/outside"
        let fm = FileManager.default
        try fm.createDirectory(atPath: tree + "/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        fm.createFile(atPath: tree + "/sub/file", contents: Data("INSIDE--INSIDE".utf8)) // as long as the secret
        fm.createFile(atPath: outside + "/file", contents: Data("SECRET-OUTSIDE".utf8))
        // Files sorted before `sub`, so reading them widens the window after the listing.
        for i in 0..<100 { fm.createFile(atPath: tree + "/f\(i)", contents: Data(repeating: 0x61, count: 4096)) }
        try fm.createSymbolicLink(atPath: base + "/link", withDestinationPath: outside)
        let swapper = SubdirectorySwapper(base: base)
        let thread = Thread { swapper.run() }
        thread.start()
        var leaked = 0, archived = 0
        for _ in 0..<300 {
            var out: [UInt8] = []
            guard (try? TarWriter.archiveDirectory(tree, to: { out.append(contentsOf: $0) })) != nil else { continue }
            archived += 1
            if out.count >= 14, (0...(out.count - 14)).contains(where: { out[$0..<($0 + 14)].elementsEqual("SECRET-OUTSIDE".utf8) }) {
                leaked += 1
            }
        }
        swapper.stop()
        while !swapper.finished { usleep(1000) }
        XCTAssertEqual(leaked, 0, "archives with the outside file's bytes, of \(archived) made")
    }
}

/// Turns `base/tree/sub` from a directory into a symlink out of the tree (`base/link`) and
/// back until stopped; the one not in the tree waits beside it, so the listing sees no
/// other name come and go.
final class SubdirectorySwapper: @unchecked Sendable {
    let base: String
    private let lock = NSLock()
    private var stopped = false
    private var done = false

    init(base: String) { self.base = base }

    func stop() { lock.lock(); stopped = true; lock.unlock() }

    var finished: Bool { lock.lock(); defer { lock.unlock() }; return done }

    func run() {
        while true {
            lock.lock(); let halt = stopped; lock.unlock()
            if halt { break }
            rename(base + "/tree/sub", base + "/parked")
            rename(base + "/link", base + "/tree/sub")
            usleep(300)
            rename(base + "/tree/sub", base + "/link")
            rename(base + "/parked", base + "/tree/sub")
            usleep(300)
        }
        lock.lock(); done = true; lock.unlock()
    }
}
