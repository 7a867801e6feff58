import Foundation
import NIOCore

/// DeleteObjects: up to 1000 keys per POST ?delete, instead of one DELETE each (garbage
/// collection removes packs by the thousand).
extension S3Client {
    /// S3's cap on keys per DeleteObjects request.
    public static let deleteBatchLimit = 1000

    /// Deletes `keys`, 1000 per request; missing keys count as deleted. Returns the keys
    /// the server refused, with its reason; throws only when a whole request fails.
    @discardableResult
    public func deleteObjects(keys: [String]) throws -> [S3DeleteFailure] {
        var failures: [S3DeleteFailure] = []
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(start + Self.deleteBatchLimit, keys.count)]
            failures += try deleteBatch(batch)
            start += batch.count
        }
        return failures
    }

    /// The Content-MD5 header value for `body`: base64 of its MD5.
    public static func contentMD5(_ body: [UInt8]) -> String {
        Data(Digests.md5(body)).base64EncodedString()
    }

    private func deleteBatch(_ keys: ArraySlice<String>) throws -> [S3DeleteFailure] {
        // Quiet mode: the answer lists only the failures.
        var xml = "<Delete><Quiet>true</Quiet>"
        for key in keys { xml += "<Object><Key>\(XMLNode.escape(key))</Key></Object>" }
        xml += "</Delete>"
        let body = Array(xml.utf8)
        // AWS requires Content-MD5 on this request; radosgw 16.2 neither requires nor
        // checks it, but another S3 would refuse the request without it.
        let md5 = Self.contentMD5(body)
        let reply = try perform(Call(method: .POST, key: nil, query: [("delete", "")],
                                     headers: [("content-md5", md5), ("content-type", "application/xml")],
                                     body: ByteBuffer(bytes: body)))
        guard let root = XMLNode.parse(reply.body) else {
            if reply.body.isEmpty { return [] }
            throw S3Error(kind: .invalidResponse, operation: "POST bucket?delete", status: reply.status,
                          message: "unreadable DeleteObjects answer")
        }
        if root.name == "Error" {
            var buffer = ByteBuffer()
            buffer.writeBytes(reply.body)
            throw S3Error.service(operation: "POST bucket?delete", status: reply.status, body: buffer)
        }
        return root.children("Error").compactMap { error in
            guard let key = error.child("Key")?.text else { return nil }
            let code = error.child("Code")?.text ?? ""
            // A key already gone is what the caller wanted.
            if code == "NoSuchKey" { return nil }
            return S3DeleteFailure(key: key, code: code, message: error.child("Message")?.text ?? "")
        }
    }
}
