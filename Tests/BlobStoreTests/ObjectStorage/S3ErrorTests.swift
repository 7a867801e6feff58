import Foundation
import ObjectStorage
import XCTest

/// Which failures are retried, and that retries happen (no Ceph needed).
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

    /// Nothing listens on the port: each attempt is refused (AsyncHTTPClient retries the
    /// connection until the 0.5 s connect timeout), and the client makes three attempts with
    /// backoff (about 0.2 s, then 0.8 s, ±25%) before giving up.
    func testConnectionErrorsAreRetriedThenReported() throws {
        let port = try freePorts(1)
        let client = try S3Client(configuration: S3Configuration(
            endpoint: "http://127.0.0.1:\(port)", region: "default", bucket: "nobody", accessKey: "a", secretKey: "b",
            connectTimeout: 0.5, maxAttempts: 3))
        defer { try? client.shutdown() }
        let started = Date()
        XCTAssertThrowsError(try client.head(key: "k")) { error in
            XCTAssertEqual((error as? S3Error)?.kind, .transport, "\(error)")
            XCTAssertEqual((error as? S3Error)?.isRetryable, true)
        }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 3 * 0.5 + 0.75, "three attempts with backoff between them")
        XCTAssertLessThan(elapsed, 10)
    }

    func testConfigurationIsChecked() {
        XCTAssertThrowsError(try S3Client(configuration: S3Configuration(
            endpoint: "ftp://example", region: "r", bucket: "b", accessKey: "a", secretKey: "s")))
        XCTAssertThrowsError(try S3Client(configuration: S3Configuration(
            endpoint: "http://127.0.0.1:1", region: "r", bucket: "b", accessKey: "a", secretKey: "s", partSize: 1 << 20)))
    }
}
