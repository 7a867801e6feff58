import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Names of containers and volumes: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 bytes, as
/// Docker accepts. They become index keys and appear in paths of other tools, so anything
/// else (slashes, `..`, control bytes) is refused.
public enum ObjectName {
    public static func validate(_ name: String, kind: String) throws {
        let bytes = Array(name.utf8)
        func ok(_ b: UInt8, first: Bool) -> Bool {
            let alnum = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
            return alnum || (!first && (b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")))
        }
        guard let first = bytes.first, bytes.count <= 128, ok(first, first: true), bytes.dropFirst().allSatisfy({ ok($0, first: false) }) else {
            throw BlobStoreError(.invalidArgument, "invalid \(kind) name \"\(name)\": use letters, digits, _ . - (at most 128, starting with a letter or digit)")
        }
    }

    /// A random 64-hex-digit name, like Docker's anonymous volumes.
    public static func random() -> String {
        (0..<4).map { _ in
            let hex = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}

extension Store {
    /// Runs `body` under a lease, so blobs it ingests before referencing them are safe from GC.
    public func withLease<R>(_ purpose: String, _ body: (Lease) throws -> R) throws -> R {
        let lease = try takeLease(duration: 24 * 3600, purpose: purpose)
        defer { try? releaseLease(lease.id) }
        return try body(lease)
    }

    /// Ingests a file as an unpinned blob (the caller references it afterwards).
    public func ingest(file path: String, expected: Digest? = nil, expectedSize: UInt64? = nil, mediaType: String? = nil) throws -> IngestResult {
        try ingest(handle: FileHandle(path: path, flags: O_RDONLY), expected: expected, expectedSize: expectedSize, mediaType: mediaType)
    }

    /// Ingests an open file from its current position as an unpinned blob.
    func ingest(handle file: FileHandle, expected: Digest? = nil, expectedSize: UInt64? = nil, mediaType: String? = nil) throws -> IngestResult {
        let session = try beginIngest()
        do {
            try withExtendedLifetime(file) { try session.append(contentsOf: file.fd) }
            return try session.commit(expected: expected, expectedSize: expectedSize, mediaType: mediaType, pin: false)
        } catch {
            try? session.abort()
            throw error
        }
    }

    /// Ingests bytes as an unpinned blob.
    public func ingest(bytes: [UInt8], expected: Digest? = nil, mediaType: String? = nil) throws -> IngestResult {
        let session = try beginIngest()
        do {
            try session.append(bytes)
            return try session.commit(expected: expected, mediaType: mediaType, pin: false)
        } catch {
            try? session.abort()
            throw error
        }
    }
}
