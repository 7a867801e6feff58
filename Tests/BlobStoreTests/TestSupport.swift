import BlobStore
import Foundation
import XCTest

/// A fresh store in a temporary folder, removed when the test ends.
func makeStore(_ test: XCTestCase, config: StoreConfig = StoreConfig()) throws -> Store {
    let root = try makeTemporaryDirectory(test)
    return try Store.create(at: root + "/store", config: config)
}

func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "blobstore-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Deterministic pseudo-random bytes (splitmix64), so failures reproduce.
struct TestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        fill(&out)
        return out
    }

    mutating func fill(_ out: inout [UInt8]) {
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i + 8 <= raw.count {
                raw.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < raw.count {
                raw[i] = UInt8(truncatingIfNeeded: next())
                i += 1
            }
        }
    }

    /// Compressible text-like bytes: words from a small vocabulary.
    mutating func text(_ count: Int) -> [UInt8] {
        let words = ["layer", "blob", "chunk", "image", "digest", "sha256", "manifest", "container", "volume", "tar", "\n", "usr/lib/", "python3", "{\"a\":1}"]
        var out: [UInt8] = []
        out.reserveCapacity(count + 16)
        while out.count < count {
            out.append(contentsOf: words[Int(next() % UInt64(words.count))].utf8)
            out.append(UInt8(ascii: " "))
        }
        return Array(out.prefix(count))
    }
}

extension Array where Element == UInt8 {
    var sha256: Digest { SHA256Hasher.hash(self) }
}

/// The built `blobctl` binary, next to the test bundle.
/// A tar reader over bytes in memory.
func tarReader(_ bytes: [UInt8]) -> TarReader {
    var position = 0
    return TarReader { buffer in
        let n = min(buffer.count, bytes.count - position)
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

func blobctlPath() throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("blobctl").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    for config in ["debug", "release"] {
        let candidate = FileManager.default.currentDirectoryPath + "/.build/\(config)/blobctl"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw XCTSkip("blobctl binary not found next to the tests")
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs blobctl with `arguments`, feeding `input` on stdin; killed after `timeout` seconds
/// when given (a hang then fails the test instead of the whole run).
@discardableResult
func runBlobctl(_ arguments: [String], input: [UInt8]? = nil, timeout: Double? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try blobctlPath())
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let inPipe = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    try process.run()
    if let timeout {
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [process] in
            if process.isRunning { kill(pid, SIGKILL) }
        }
    }
    if let input {
        inPipe.fileHandleForWriting.write(Data(input))
        try inPipe.fileHandleForWriting.close()
    }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

/// Starts `blobctl --store root put -` (behind `launcher`, e.g. `unshare ...`, when given)
/// reading from a pipe the caller writes to: the put commits only once the pipe is closed.
func startPut(root: String, launcher: [String] = []) throws -> (process: Process, input: Pipe) {
    let process = Process()
    let command = launcher + [try blobctlPath(), "--store", root, "put", "-"]
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    let input = Pipe()
    process.standardInput = input
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return (process, input)
}

/// Checks what every count in the index should be, from the blobs alone: each chunk's
/// count equals the number of recipe entries naming it, and totals match.
func assertCountsConsistent(_ store: Store, file: StaticString = #filePath, line: UInt = #line) throws {
    var expected: [Digest: UInt64] = [:]
    var logical: UInt64 = 0
    let blobs = try store.list()
    for info in blobs {
        let record = try store.blobRecord(info.digest)
        for key in record.chunks { expected[key, default: 0] += 1 }
        logical += info.size
    }
    let chunks = try store.chunkRecords()
    for (key, record) in chunks {
        XCTAssertEqual(record.references, expected[key] ?? 0, "count of chunk \(key)", file: file, line: line)
    }
    for key in expected.keys {
        XCTAssertNotNil(chunks[key], "chunk \(key) used by a blob is in the index", file: file, line: line)
    }
    let totals = try store.totals()
    XCTAssertEqual(totals.blobs, UInt64(blobs.count), "blob total", file: file, line: line)
    XCTAssertEqual(totals.logicalBytes, logical, "logical bytes total", file: file, line: line)
    XCTAssertEqual(totals.chunks, UInt64(chunks.count), "chunk total", file: file, line: line)
}

/// Strings appended from several threads (failures seen by workers, say).
final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ s: String) { lock.lock(); storage.append(s); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return storage }
}
