import BlobStore
import Foundation
import XCTest

/// A blob far larger than memory budgets, streamed through blobctl in both directions.
final class LargeBlobTests: XCTestCase {
    static let size: UInt64 = 2 << 30 + 12345 // 2 GiB and a bit, so the tail is partial

    /// Generates the blob block by block: 64 distinct 4 MiB blocks repeated, so the store
    /// also exercises dedup and CI's disk is spared.
    func forEachBlock(_ body: ([UInt8]) throws -> Void) rethrows {
        var produced: UInt64 = 0
        var i: UInt64 = 0
        while produced < LargeBlobTests.size {
            var r = TestRandom(seed: 5000 + i % 64)
            let n = Int(min(4 << 20, LargeBlobTests.size - produced))
            try body(r.bytes(n))
            produced += UInt64(n)
            i += 1
        }
    }

    func testMultiGiBStreamedRoundTripInBoundedMemory() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        _ = try Store.create(at: root)
        var expected = SHA256Hasher()
        forEachBlock { expected.update($0) }
        let digest = expected.finalize()

        // put: stream into stdin.
        let put = Process()
        put.executableURL = URL(fileURLWithPath: try blobctlPath())
        put.arguments = ["--store", root, "put", "-", "--expect", digest.description]
        let input = Pipe(), output = Pipe()
        put.standardInput = input
        put.standardOutput = output
        put.standardError = FileHandle.nullDevice
        try put.run()
        try forEachBlock { input.fileHandleForWriting.write(Data($0)) }
        // All but the last pipe-full is ingested; the high-water mark covers nearly all of it.
        let putPeak = try XCTUnwrap(peakRSSMiB(put.processIdentifier))
        try input.fileHandleForWriting.close()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        put.waitUntilExit()
        XCTAssertEqual(put.terminationStatus, 0)
        XCTAssertEqual(printed.trimmingCharacters(in: .whitespacesAndNewlines), digest.description)

        // get: stream out of stdout and hash as it comes.
        let get = Process()
        get.executableURL = URL(fileURLWithPath: try blobctlPath())
        get.arguments = ["--store", root, "get", digest.description]
        let out = Pipe()
        get.standardOutput = out
        try get.run()
        var actual = SHA256Hasher()
        var count: UInt64 = 0
        let fd = out.fileHandleForReading.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var getPeak = 0
        while true {
            if count > LargeBlobTests.size - (64 << 20) && getPeak == 0 {
                getPeak = peakRSSMiB(get.processIdentifier) ?? 0
            }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            buffer.withUnsafeBytes { actual.update(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            count += UInt64(n)
        }
        get.waitUntilExit()
        XCTAssertEqual(get.terminationStatus, 0)
        XCTAssertEqual(count, LargeBlobTests.size)
        XCTAssertEqual(actual.finalize(), digest)

        // Neither process held the blob: their peak RSS stays far below it.
        XCTAssertLessThan(putPeak, 256, "peak RSS of blobctl put was \(putPeak) MiB")
        XCTAssertGreaterThan(getPeak, 0)
        XCTAssertLessThan(getPeak, 256, "peak RSS of blobctl get was \(getPeak) MiB")

        let store = try Store.open(at: root)
        let info = try store.stat(digest)
        XCTAssertEqual(info.size, LargeBlobTests.size)
        XCTAssertLessThan(try store.totals().uniqueBytes, 300 << 20, "repeated blocks stored once")
        // A range in the middle, across a block boundary.
        var middle: [UInt8] = []
        let at: UInt64 = 1 << 30
        try store.read(digest, range: at - 100..<at + 100) { middle.append(contentsOf: $0) }
        var r1 = TestRandom(seed: 5000 + 255 % 64), r2 = TestRandom(seed: 5000 + 256 % 64)
        XCTAssertEqual(middle, Array(r1.bytes(4 << 20).suffix(100)) + Array(r2.bytes(4 << 20).prefix(100)))
    }
}

/// A running process's peak resident set (VmHWM), in MiB. Unlike getrusage's figure for
/// children, it starts afresh at exec rather than counting the forking parent's pages.
func peakRSSMiB(_ pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kib = line.split(separator: " ").compactMap { Int($0) }.first
        return kib.map { $0 / 1024 }
    }
    return nil
}
