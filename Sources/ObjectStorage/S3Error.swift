import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A failed S3 operation: what was tried, what the server said, and whether trying again
/// could help.
public struct S3Error: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The server answered with an error status (and usually an XML <Error> body).
        case service
        /// No usable answer: connection refused or reset, timeout.
        case transport
        /// An answer this client does not understand (bad XML, wrong length, missing header).
        case invalidResponse
        /// Reading or writing a local file failed.
        case localFile
        /// The caller asked for something impossible (empty range, small buffer).
        case invalidRequest
    }

    public var kind: Kind
    /// "PUT bucket/key", for the log and the message.
    public var operation: String
    /// The HTTP status, when the server answered.
    public var status: Int?
    /// S3's error code from the XML body (NoSuchKey, SignatureDoesNotMatch, SlowDown…), or
    /// nil when the body had none (HEAD answers carry no body).
    public var code: String?
    public var message: String
    public var requestID: String?

    public init(kind: Kind, operation: String, status: Int? = nil, code: String? = nil, message: String,
                requestID: String? = nil) {
        self.kind = kind
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    public var isNotFound: Bool { status == 404 }

    /// Worth another attempt for an idempotent request: server-side trouble, throttling,
    /// or a connection that failed. Client errors (4xx) are final, except the timeouts and
    /// throttling S3 reports as 400/429.
    public var isRetryable: Bool {
        switch kind {
        case .transport: return true
        case .service:
            guard let status else { return false }
            if status >= 500 { return true }
            if status == 429 { return true }
            return ["SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError"].contains(code ?? "")
        case .invalidResponse, .localFile, .invalidRequest: return false
        }
    }

    public var description: String {
        var s = "S3 \(operation) failed"
        if let status { s += ": HTTP \(status)" }
        if let code { s += " \(code)" }
        if !message.isEmpty { s += ": \(message)" }
        if let requestID { s += " (request \(requestID))" }
        if isRetryable { s += " [retryable]" }
        return s
    }

    /// From a status and an error body (an S3 <Error> document, possibly empty).
    static func service(operation: String, status: Int, body: ByteBuffer?, headers: [(String, String)] = []) -> S3Error {
        let xml = body.flatMap { XMLNode.parse(Array($0.readableBytesView)) }
        let code = xml?.name == "Error" ? xml?.child("Code")?.text : nil
        var message = xml?.child("Message")?.text ?? ""
        if message.isEmpty, let body, xml == nil, body.readableBytes > 0 {
            message = String(decoding: body.readableBytesView.prefix(200), as: UTF8.self)
        }
        if message.isEmpty { message = HTTPResponseStatus(statusCode: status).reasonPhrase }
        let requestID = xml?.child("RequestId")?.text
            ?? headers.first { $0.0.lowercased() == "x-amz-request-id" }?.1
        return S3Error(kind: .service, operation: operation, status: status, code: code,
                       message: message, requestID: requestID)
    }

    static func transport(operation: String, _ error: Error) -> S3Error {
        S3Error(kind: .transport, operation: operation, message: String(describing: error))
    }
}
