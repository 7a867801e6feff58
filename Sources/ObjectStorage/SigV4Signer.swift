import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// AWS Signature Version 4 for S3 requests, sent as an Authorization header.
///
/// Every request signs the SHA-256 of its body (x-amz-content-sha256): the client hashes
/// each body anyway (single PUTs and multipart parts are in memory when sent), and a signed
/// hash lets radosgw reject a body damaged in transit. UNSIGNED-PAYLOAD is not used.
public struct SigV4Signer: Sendable {
    public let accessKey: String
    public let secretKey: String
    public let region: String
    public let service: String

    public init(accessKey: String, secretKey: String, region: String, service: String = "s3") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    /// What a signature covers. `encodedPath` is the path exactly as sent (already
    /// percent-encoded by `URIEncoding.encodePath`); query items are raw and encoded here.
    public struct Request: Sendable {
        public var method: String
        public var encodedPath: String
        public var query: [(name: String, value: String)]
        /// Headers to sign, Host among them. Names are compared case-insensitively.
        public var headers: [(name: String, value: String)]
        /// Lower-case hex SHA-256 of the body.
        public var payloadHash: String

        public init(method: String, encodedPath: String, query: [(name: String, value: String)] = [],
                    headers: [(name: String, value: String)], payloadHash: String) {
            self.method = method
            self.encodedPath = encodedPath
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    /// The signature's result: the headers to add to the request.
    public struct Signed: Sendable {
        public var authorization: String
        public var amzDate: String
        public var payloadHash: String
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String

        /// x-amz-date, x-amz-content-sha256 and Authorization, ready to add.
        public var headers: [(name: String, value: String)] {
            [("x-amz-date", amzDate), ("x-amz-content-sha256", payloadHash), ("Authorization", authorization)]
        }
    }

    /// Signs `request` at `date`. x-amz-date and x-amz-content-sha256 are added to the
    /// signed headers (they must be sent with the values in `Signed.headers`).
    public func sign(_ request: Request, date: Date) -> Signed {
        let (amzDate, dateStamp) = Self.timestamps(date)
        var headers = request.headers.filter {
            let n = $0.name.lowercased()
            return n != "x-amz-date" && n != "x-amz-content-sha256" && n != "authorization"
        }
        headers.append(("x-amz-date", amzDate))
        headers.append(("x-amz-content-sha256", request.payloadHash))
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let canonicalRequest = [
            request.method,
            request.encodedPath.isEmpty ? "/" : request.encodedPath,
            URIEncoding.canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")
        let scope = "\(dateStamp)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", amzDate, scope, Digests.hex(Digests.sha256(canonicalRequest)),
        ].joined(separator: "\n")
        let signature = Digests.hex(Digests.hmacSHA256(key: signingKey(dateStamp: dateStamp), message: stringToSign))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)"
        return Signed(authorization: authorization, amzDate: amzDate, payloadHash: request.payloadHash,
                      canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature)
    }

    /// The payload hash of an empty body (GET, HEAD, DELETE).
    public static let emptyPayloadHash = Digests.emptySHA256Hex

    /// The payload hash to sign for `body`: lower-case hex SHA-256.
    public static func payloadHash(of body: UnsafeRawBufferPointer) -> String {
        Digests.hex(Digests.sha256(body))
    }

    /// The per-day key: HMAC chain over date, region, service and "aws4_request".
    public func signingKey(dateStamp: String) -> [UInt8] {
        var key = Digests.hmacSHA256(key: Array(("AWS4" + secretKey).utf8), message: dateStamp)
        key = Digests.hmacSHA256(key: key, message: region)
        key = Digests.hmacSHA256(key: key, message: service)
        return Digests.hmacSHA256(key: key, message: "aws4_request")
    }

    /// Names lower-cased and sorted, values trimmed with inner runs of spaces folded to one;
    /// repeated names joined with ','.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let folded = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            merged[name.lowercased(), default: []].append(folded)
        }
        let names = merged.keys.sorted()
        let canonical = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// (yyyyMMdd'T'HHmmss'Z', yyyyMMdd) in UTC, from gmtime_r: no shared DateFormatter.
    static func timestamps(_ date: Date) -> (String, String) {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let day = pad(tm.tm_year + 1900, 4) + pad(tm.tm_mon + 1, 2) + pad(tm.tm_mday, 2)
        return (day + "T" + pad(tm.tm_hour, 2) + pad(tm.tm_min, 2) + pad(tm.tm_sec, 2) + "Z", day)
    }
}
