import BlobStore
import Foundation
import HTTPTypes
import Hummingbird
import Metrics

/// An error of the OCI distribution spec: a code from its list, the HTTP status that goes
/// with it, and the JSON body clients parse (`{"errors":[{"code","message","detail"}]}`).
struct RegistryError: Error, HTTPResponseError {
    enum Code: String {
        case blobUnknown = "BLOB_UNKNOWN"
        case blobUploadInvalid = "BLOB_UPLOAD_INVALID"
        case blobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
        case digestInvalid = "DIGEST_INVALID"
        case manifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
        case manifestInvalid = "MANIFEST_INVALID"
        case manifestUnknown = "MANIFEST_UNKNOWN"
        case nameInvalid = "NAME_INVALID"
        case nameUnknown = "NAME_UNKNOWN"
        case sizeInvalid = "SIZE_INVALID"
        case unauthorized = "UNAUTHORIZED"
        case denied = "DENIED"
        case unsupported = "UNSUPPORTED"
        case rangeInvalid = "RANGE_INVALID"
        case tooManyRequests = "TOOMANYREQUESTS"
        case unavailable = "UNAVAILABLE"
    }

    var code: Code
    var message: String
    var status: HTTPResponse.Status
    var headers: HTTPFields = [:]

    init(_ code: Code, _ message: String, status: HTTPResponse.Status? = nil, headers: HTTPFields = [:]) {
        self.code = code
        self.message = message
        self.headers = headers
        switch code {
        case .blobUnknown, .blobUploadUnknown, .manifestUnknown, .nameUnknown: self.status = status ?? .notFound
        case .unauthorized: self.status = status ?? .unauthorized
        case .denied: self.status = status ?? .forbidden
        case .unsupported: self.status = status ?? .methodNotAllowed
        case .rangeInvalid: self.status = status ?? .rangeNotSatisfiable
        case .tooManyRequests: self.status = status ?? .tooManyRequests
        case .unavailable: self.status = status ?? .serviceUnavailable
        default: self.status = status ?? .badRequest
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: [String: Any] = ["errors": [["code": code == .rangeInvalid ? "BLOB_UPLOAD_INVALID" : code.rawValue, "message": message]]]
        let data = try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Load shed: the client should come back after `seconds`. Counted by `reason` in
    /// `blobstore_registry_shed_total`.
    static func busy(_ code: Code, _ message: String, retryAfter seconds: Int, reason: String) -> RegistryError {
        Counter(label: "blobstore_registry_shed_total", dimensions: [("reason", reason)]).increment()
        return RegistryError(code, message, headers: [.retryAfter: String(max(1, seconds))])
    }

    /// The registry's view of a store error.
    static func from(_ error: BlobStoreError, notFound: Code = .blobUnknown) -> RegistryError {
        switch error.code {
        case .notFound: return RegistryError(notFound, error.message)
        case .digestMismatch: return RegistryError(.digestInvalid, error.message)
        case .invalidArgument: return RegistryError(.manifestInvalid, error.message)
        case .unavailable:
            // The cluster's index or object storage is down: a clean 503 the client retries.
            return RegistryError(.unavailable, error.message, headers: [.retryAfter: "1"])
        default: return RegistryError(.unsupported, error.message, status: .internalServerError)
        }
    }
}
