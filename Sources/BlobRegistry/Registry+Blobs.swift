import BlobStore
import Foundation
import HTTPTypes
import Hummingbird

extension Registry {
    /// GET/HEAD a blob, whole or by `Range` (one range, or several as multipart/byteranges).
    /// The body streams in windows read on the blocking pool: memory stays bounded whatever
    /// the blob's size.
    func getBlob(_ request: Request, name: String, digest text: String, head: Bool) async throws -> Response {
        let digest = try parseDigest(text)
        let store = self.store
        guard let info = try await blocking({ try store.repositoryBlob(name, digest) }) else {
            throw RegistryError(.blobUnknown, "blob \(digest) is not in repository \(name)")
        }
        var headers: HTTPFields = [.dockerContentDigest: digest.description, .acceptRanges: "bytes", .eTag: "\"\(digest)\""]
        let ranges = try request.headers[.range].map { try ByteRanges(parsing: $0, size: info.size) }
        if head || info.size == 0 {
            headers[.contentType] = "application/octet-stream"
            headers[.contentLength] = String(info.size)
            return Response(status: .ok, headers: headers, body: .init())
        }
        guard let ranges, !ranges.ranges.isEmpty else {
            headers[.contentType] = "application/octet-stream"
            return Response(status: .ok, headers: headers, body: stream(try await open(digest, 0..<info.size)))
        }
        if ranges.ranges.count == 1 {
            let r = ranges.ranges[0]
            headers[.contentType] = "application/octet-stream"
            headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(info.size)"
            return Response(status: .partialContent, headers: headers, body: stream(try await open(digest, r)))
        }
        // Several ranges: multipart/byteranges, each part with its own Content-Range.
        let boundary = "blobstore-" + digest.short
        headers[.contentType] = "multipart/byteranges; boundary=\(boundary)"
        let parts = ranges.ranges
        let size = info.size
        let body = ResponseBody { writer in
            for r in parts {
                let head = "\r\n--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes \(r.lowerBound)-\(r.upperBound - 1)/\(size)\r\n\r\n"
                try await writer.write(ByteBuffer(string: head))
                try await self.copy(digest, r, to: &writer)
            }
            try await writer.write(ByteBuffer(string: "\r\n--\(boundary)--\r\n"))
            try await writer.finish(nil)
        }
        return Response(status: .partialContent, headers: headers, body: body)
    }

    /// A blob range opened and its first batch read before any header is sent: when the
    /// index or object storage is unreachable, the answer is a clean 503, not a 200 whose
    /// body breaks off (a small blob is then read whole before its headers).
    struct OpenedRange: Sendable {
        let stream: BlobStream
        let first: ByteBuffer?
    }

    func open(_ digest: Digest, _ range: Range<UInt64>) async throws -> OpenedRange {
        let store = self.store
        return try await blocking {
            let stream = try BlobStream(store: store, digest: digest, range: range, batchBytes: 2 << 20)
            return OpenedRange(stream: stream, first: try stream.nextBuffer())
        }
    }

    func stream(_ opened: OpenedRange) -> ResponseBody {
        ResponseBody(contentLength: Int(opened.stream.range.count)) { writer in
            try await self.copy(opened, to: &writer)
            try await writer.finish(nil)
        }
    }

    func copy(_ digest: Digest, _ range: Range<UInt64>, to writer: inout any ResponseBodyWriter) async throws {
        try await copy(try await open(digest, range), to: &writer)
    }

    /// Copies an opened range to a response, one batch of chunks at a time, reading the
    /// next batch while the previous one is being written.
    func copy(_ opened: OpenedRange, to writer: inout any ResponseBodyWriter) async throws {
        let stream = opened.stream
        @Sendable func nextBatch() async throws -> ByteBuffer? {
            try await Blocking.run { try stream.nextBuffer() }
        }
        guard let first = opened.first else { return }
        var pending = Task { try await nextBatch() }
        var next: ByteBuffer? = first
        while let buffer = next {
            bytesOut.increment(by: Int64(buffer.readableBytes))
            try await writer.write(buffer)
            next = try await pending.value
            if next != nil { pending = Task { try await nextBatch() } }
        }
    }

    func deleteBlob(name: String, digest text: String) async throws -> Response {
        let digest = try parseDigest(text)
        let store = self.store
        guard try await blocking({ try store.unlinkBlob(name, digest) }) else {
            throw RegistryError(.blobUnknown, "blob \(digest) is not in repository \(name)")
        }
        return Response(status: .accepted, headers: [.contentLength: "0"])
    }
}

/// A `Range: bytes=a-b,c-,-n` header resolved against a blob's size.
///
/// Bounded, so one request cannot turn into many full reads (`bytes=0-,0-,0-,…`, the
/// pattern of CVE-2011-3192): at most `maxRanges` ranges are accepted, and ranges that
/// overlap or touch are coalesced into one (RFC 9110 §14.2 allows both), so every byte of
/// the blob is read at most once per request. Ranges that start past the end are
/// unsatisfiable and left out; only when none is left is the answer 416 (RFC 9110 §14.1.2).
struct ByteRanges {
    static let maxRanges = 16
    var ranges: [Range<UInt64>]

    init(parsing header: String, size: UInt64) throws {
        guard header.hasPrefix("bytes=") else {
            throw RegistryError(.rangeInvalid, "unsupported range unit in \"\(header)\"", headers: [.contentRange: "bytes */\(size)"])
        }
        let specs = header.dropFirst(6).split(separator: ",")
        guard specs.count <= ByteRanges.maxRanges else {
            throw RegistryError(.rangeInvalid, "too many ranges (\(specs.count); at most \(ByteRanges.maxRanges) per request)", headers: [.contentRange: "bytes */\(size)"])
        }
        ranges = []
        for spec in specs {
            let s = spec.trimmingCharacters(in: .whitespaces)
            let parts = s.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw RegistryError(.rangeInvalid, "malformed range \"\(s)\"", headers: [.contentRange: "bytes */\(size)"]) }
            if parts[0].isEmpty {
                guard let n = UInt64(parts[1]) else { throw RegistryError(.rangeInvalid, "malformed range \"\(s)\"", headers: [.contentRange: "bytes */\(size)"]) }
                if n > 0 && size > 0 { ranges.append(size - min(n, size)..<size) } // else unsatisfiable: skipped
            } else {
                guard let a = UInt64(parts[0]) else { throw RegistryError(.rangeInvalid, "malformed range \"\(s)\"", headers: [.contentRange: "bytes */\(size)"]) }
                let b = parts[1].isEmpty ? UInt64.max : (UInt64(parts[1]) ?? UInt64.max)
                guard b >= a else { throw RegistryError(.rangeInvalid, "malformed range \"\(s)\"", headers: [.contentRange: "bytes */\(size)"]) }
                // A range starting past the end is unsatisfiable: skipped, the others served.
                if a < size { ranges.append(a..<min(b, size - 1) + 1) }
            }
        }
        guard !ranges.isEmpty else {
            throw RegistryError(.rangeInvalid, "no range of \"\(header)\" is within the blob's \(size) bytes", headers: [.contentRange: "bytes */\(size)"])
        }
        ranges = ByteRanges.coalesced(ranges)
    }

    /// The ranges as given when none overlap or touch; otherwise sorted and merged.
    static func coalesced(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt64>] = []
        for r in sorted {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged.count == ranges.count ? ranges : merged
    }
}

extension BlobStream {
    /// The next batch as a buffer for a response body; nil once everything was read.
    /// The chunks are decoded straight into the buffer (no copy of the batch).
    func nextBuffer() throws -> ByteBuffer? {
        guard let size = nextBatchSize else { return nil }
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        var wanted = 0..<0
        try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            wanted = try readNextBatch(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<size]))
            return size
        }
        buffer.moveWriterIndex(to: wanted.upperBound)
        buffer.moveReaderIndex(to: wanted.lowerBound)
        return buffer
    }
}
