/// What HEAD tells about an object.
public struct S3ObjectInfo: Sendable, Equatable {
    public var size: Int
    /// As the server sends it, quotes removed. A multipart object's ETag is not an MD5 of
    /// its bytes ("<md5 of part md5s>-<parts>"), so it is an identity, not a checksum.
    public var etag: String

    public init(size: Int, etag: String) {
        self.size = size
        self.etag = etag
    }
}

/// One entry of a listing.
public struct S3ObjectSummary: Sendable, Equatable {
    public var key: String
    public var size: Int
    public var etag: String

    public init(key: String, size: Int, etag: String) {
        self.key = key
        self.size = size
        self.etag = etag
    }
}

/// A key that DeleteObjects could not delete, with the server's reason.
public struct S3DeleteFailure: Sendable, Equatable {
    public var key: String
    public var code: String
    public var message: String

    public init(key: String, code: String, message: String) {
        self.key = key
        self.code = code
        self.message = message
    }
}

extension String {
    /// ETags arrive quoted ("…"); callers compare the bare value.
    var unquotedETag: String {
        var s = Substring(self)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") { s = s.dropFirst().dropLast() }
        return String(s)
    }
}
