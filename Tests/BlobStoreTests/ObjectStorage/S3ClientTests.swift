import Foundation
import ObjectStorage
import XCTest

/// S3Client without a server: retries of connection errors, configuration checks,
/// Content-MD5.
final class S3ClientTests: XCTestCase {
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

    func testContentMD5() {
        // RFC 1321's "abc" (900150983cd24fb0d6963f7d28e17f72) and "", in base64.
        XCTAssertEqual(S3Client.contentMD5(Array("abc".utf8)), "kAFQmDzST7DWlj99KOF/cg==")
        XCTAssertEqual(S3Client.contentMD5([]), "1B2M2Y8AsgTpgAmY7PhCfg==")
    }

    func testConfigurationIsChecked() {
        XCTAssertThrowsError(try S3Client(configuration: S3Configuration(
            endpoint: "ftp://example", region: "r", bucket: "b", accessKey: "a", secretKey: "s")))
        XCTAssertThrowsError(try S3Client(configuration: S3Configuration(
            endpoint: "http://127.0.0.1:1", region: "r", bucket: "b", accessKey: "a", secretKey: "s", partSize: 1 << 20)))
    }
}
