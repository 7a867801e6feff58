/// ListObjectsV2, following continuation tokens to the end.
extension S3Client {
    /// Every object whose key starts with `prefix`, in the server's (UTF-8 byte) order.
    /// `pageSize` is max-keys per request (S3 caps it at 1000); smaller pages only cost
    /// more round trips, and tests use them to exercise continuation.
    public func list(prefix: String = "", pageSize: Int = 1000) throws -> [S3ObjectSummary] {
        var result: [S3ObjectSummary] = []
        var token: String?
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("max-keys", String(pageSize))]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let token { query.append(("continuation-token", token)) }
            let reply = try perform(Call(method: .GET, key: nil, query: query))
            guard let root = XMLNode.parse(reply.body), root.name == "ListBucketResult" else {
                throw S3Error(kind: .invalidResponse, operation: "GET bucket?list-type=2", status: reply.status,
                              message: "unreadable listing")
            }
            for entry in root.children("Contents") {
                guard let key = entry.child("Key")?.text, let size = entry.child("Size").flatMap({ Int($0.text) }) else {
                    throw S3Error(kind: .invalidResponse, operation: "GET bucket?list-type=2", status: reply.status,
                                  message: "a listing entry without Key or Size")
                }
                result.append(S3ObjectSummary(key: key, size: size, etag: entry.child("ETag")?.text.unquotedETag ?? ""))
            }
            let truncated = root.child("IsTruncated")?.text == "true"
            let next = root.child("NextContinuationToken")?.text
            if truncated {
                guard let next, !next.isEmpty, next != token else {
                    throw S3Error(kind: .invalidResponse, operation: "GET bucket?list-type=2", status: reply.status,
                                  message: "a truncated listing without a new continuation token")
                }
                token = next
            } else {
                token = nil
            }
        } while token != nil
        return result
    }
}
