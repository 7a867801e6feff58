import ArgumentParser
import BlobStore
import Foundation

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a blob, or a byte range of it, to stdout or a file.")

    @OptionGroup var store: StoreOptions

    @Argument(help: "The blob's digest (sha256:<hex>).")
    var digest: String

    @Option(name: .shortAndLong, help: "Write to this file instead of stdout (replaced only when the read succeeds).")
    var output: String?

    @Option(help: ArgumentHelp("Only bytes START to END, inclusive, as in HTTP ranges; END may be left out.", valueName: "start-end"))
    var range: String?

    @Flag(help: "Check every chunk's SHA-256, not only its checksum.")
    var verify = false

    func run() throws {
        let d = try parseDigest(digest)
        let s = try store.open()
        let info = try s.stat(d)
        let byteRange = try range.map { try parseRange($0, size: info.size) }
        let target = output.map { $0 + ".blobctl-partial" }
        let fd: Int32
        if let target {
            fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw BlobStoreError(.io, "cannot create \(target): \(String(cString: strerror(errno)))") }
        } else {
            fd = 1
        }
        let progress = ProgressLine("get", total: UInt64(byteRange?.count ?? Int(info.size)))
        var done: UInt64 = 0
        do {
            try s.read(d, range: byteRange, verify: verify) { chunk in
                try writeAll(fd, chunk)
                done += UInt64(chunk.count)
                if target != nil { progress.update(done) }
            }
            progress.finish()
            if let target, let output {
                guard fsync(fd) == 0, close(fd) == 0 else { throw BlobStoreError(.io, "cannot write \(output): \(String(cString: strerror(errno)))") }
                guard rename(target, output) == 0 else { throw BlobStoreError(.io, "cannot rename to \(output): \(String(cString: strerror(errno)))") }
            }
        } catch {
            progress.finish()
            if let target {
                close(fd)
                unlink(target)
            }
            throw error
        }
    }
}

/// "START-END" (inclusive) or "START-" to a half-open byte range within `size`.
func parseRange(_ text: String, size: UInt64) throws -> Range<UInt64> {
    let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2, let start = UInt64(parts[0]) else {
        throw UsageError("bad range \(text): expected START-END or START-")
    }
    let end: UInt64
    if parts[1].isEmpty {
        end = size
    } else {
        guard let last = UInt64(parts[1]), last >= start else { throw UsageError("bad range \(text): END must be >= START") }
        end = min(last + 1, size)
    }
    guard start < size || (start == 0 && size == 0) else {
        throw UsageError("range \(text) starts past the end of the blob (\(size) bytes)")
    }
    return start..<end
}

func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws {
    var done = 0
    while done < buffer.count {
        let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw BlobStoreError(.io, "write output: \(String(cString: strerror(errno)))")
        }
        done += n
    }
}
