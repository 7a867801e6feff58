import Foundation
import NIOCore
import NIOHTTP1

/// Single-request operations on the bucket and on whole objects.
extension S3Client {
    /// Creates the bucket. Idempotent: a bucket this account already owns is success
    /// (radosgw answers 409 BucketAlreadyOwnedByYou or, by default, plain 200).
    public func createBucket() throws {
        do {
            _ = try perform(Call(method: .PUT, key: nil))
        } catch let error as S3Error where error.code == "BucketAlreadyOwnedByYou" {
            return
        }
    }

    /// Stores `bytes` as `key` in one PUT, replacing any object of that name; returns the
    /// ETag. For large files prefer `putFile`, which streams and switches to multipart.
    @discardableResult
    public func put<Bytes: ContiguousBytes>(key: String, bytes: Bytes) throws -> String {
        var buffer = ByteBuffer()
        bytes.withUnsafeBytes { buffer = ByteBuffer(bytes: $0) }
        return try putBuffer(key: key, buffer: buffer, payloadHash: nil)
    }

    func putBuffer(key: String, buffer: ByteBuffer, payloadHash: String?) throws -> String {
        let reply = try perform(Call(method: .PUT, key: key,
                                     headers: [("content-type", "application/octet-stream")],
                                     body: buffer, payloadHash: payloadHash))
        return reply.headers.first(name: "etag")?.unquotedETag ?? ""
    }

    /// The object's bytes, or those of `range` (offsets in the object, end exclusive).
    /// Throws an S3Error with status 404 (NoSuchKey) when there is no such object, and 416
    /// (InvalidRange) when the range starts past its end; a range running past the end is
    /// cut short, as HTTP does.
    public func get(key: String, range: Range<Int>? = nil) throws -> [UInt8] {
        let reply = try perform(getCall(key: key, range: range))
        if let range, reply.status == 200 {
            // A server that ignored Range sent the whole object: cut it here.
            let lower = min(range.lowerBound, reply.body.count), upper = min(range.upperBound, reply.body.count)
            return Array(reply.body[lower..<upper])
        }
        return reply.body
    }

    /// Reads the object (or `range` of it) into `buffer`, returning how many bytes came.
    /// Nothing is collected on the side: the bytes go straight from the socket into
    /// `buffer`. Throws when the answer would not fit.
    public func get(key: String, range: Range<Int>? = nil, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let reply = try perform(getCall(key: key, range: range), sink: buffer)
        if range != nil, reply.status == 200 {
            throw S3Error(kind: .invalidResponse, operation: "GET key \(key)",
                          status: 200, message: "the server ignored the Range header")
        }
        return reply.written
    }

    private func getCall(key: String, range: Range<Int>?) throws -> Call {
        var call = Call(method: .GET, key: key)
        if let range {
            guard range.lowerBound >= 0, !range.isEmpty else {
                throw S3Error(kind: .invalidRequest, operation: "GET key \(key)",
                              message: "empty or negative range \(range)")
            }
            call.headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        return call
    }

    /// Size and ETag of `key`, or nil when there is no such object.
    public func head(key: String) throws -> S3ObjectInfo? {
        let reply: Reply
        do {
            reply = try perform(Call(method: .HEAD, key: key))
        } catch let error as S3Error where error.status == 404 {
            return nil
        }
        guard let size = reply.headers.first(name: "content-length").flatMap(Int.init) else {
            throw S3Error(kind: .invalidResponse, operation: "HEAD key \(key)", status: reply.status,
                          message: "no Content-Length in the answer")
        }
        return S3ObjectInfo(size: size, etag: reply.headers.first(name: "etag")?.unquotedETag ?? "")
    }

    /// Deletes `key`. Deleting a missing object is success, as S3 itself answers 204.
    public func delete(key: String) throws {
        do {
            _ = try perform(Call(method: .DELETE, key: key))
        } catch let error as S3Error where error.status == 404 && error.code != "NoSuchBucket" {
            return
        }
    }
}
