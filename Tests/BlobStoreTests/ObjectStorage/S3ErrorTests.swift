import Foundation
import ObjectStorage
import XCTest

/// Which failures count as retryable, and how they read.
final class S3ErrorTests: XCTestCase {
    func testRetryableClassification() {
        func service(_ status: Int, _ code: String?) -> S3Error {
            S3Error(kind: .service, operation: "GET key k", status: status, code: code, message: "")
        }
        XCTAssertTrue(service(500, "InternalError").isRetryable)
        XCTAssertTrue(service(503, "SlowDown").isRetryable)
        XCTAssertTrue(service(400, "RequestTimeout").isRetryable)
        XCTAssertFalse(service(403, "SignatureDoesNotMatch").isRetryable)
        XCTAssertFalse(service(404, "NoSuchKey").isRetryable)
        XCTAssertTrue(service(404, "NoSuchKey").isNotFound)
        XCTAssertTrue(S3Error(kind: .transport, operation: "GET key k", message: "connection refused").isRetryable)
        XCTAssertFalse(S3Error(kind: .localFile, operation: "read f", message: "EIO").isRetryable)
        XCTAssertEqual(service(403, "SignatureDoesNotMatch").description,
                       "S3 GET key k failed: HTTP 403 SignatureDoesNotMatch")
    }
}
