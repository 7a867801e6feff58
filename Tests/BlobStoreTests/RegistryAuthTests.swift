import BlobStore
import Foundation
import XCTest

/// The authenticator under abuse: bcrypt is not run per request, and a client guessing
/// passwords is slowed to a few guesses a minute.
final class RegistryAuthTests: XCTestCase {
    private func htpasswdServer(config: String) throws -> RegistryProcess {
        let htpasswd = try requireTool("htpasswd")
        let entry = try runTool(htpasswd, ["-nbB", "alice", "s3cret pass"])
        XCTAssertEqual(entry.status, 0, entry.stderr)
        let file = try makeTemporaryDirectory(self) + "/htpasswd"
        try Data(entry.stdout.utf8).write(to: URL(fileURLWithPath: file))
        return try RegistryProcess(self, arguments: ["--htpasswd", file], config: config)
    }

    private func basic(_ user: String, _ password: String) -> [String: String] {
        ["Authorization": "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()]
    }

    private func metric(_ server: RegistryProcess, _ name: String) throws -> Int {
        let text = try server.request("GET", "/metrics").text
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + " ") }) else { return 0 }
        return Int(Double(line.split(separator: " ").last ?? "") ?? -1)
    }

    /// A verified password is remembered: twenty requests, one bcrypt. A wrong password
    /// and an unknown user each cost a bcrypt (the decoy for the unknown user keeps its
    /// timing like a known one's), and neither is remembered.
    func testVerifiedCredentialsAreCached() throws {
        let server = try htpasswdServer(config: "{}")
        for _ in 0..<20 {
            XCTAssertEqual(try server.request("GET", "/v2/", headers: basic("alice", "s3cret pass")).status, 200)
        }
        XCTAssertEqual(try metric(server, "blobstore_registry_password_checks_total"), 1)
        for _ in 0..<2 {
            XCTAssertEqual(try server.request("GET", "/v2/", headers: basic("alice", "wrong")).status, 401)
            XCTAssertEqual(try server.request("GET", "/v2/", headers: basic("mallory", "s3cret pass")).status, 401)
        }
        XCTAssertEqual(try metric(server, "blobstore_registry_password_checks_total"), 5)
    }

    /// Past `failuresPerMinute` failures, a client is answered 429 with Retry-After, even
    /// with the right password, and no bcrypt runs for it.
    func testFailuresAreRateLimitedPerClient() throws {
        let server = try htpasswdServer(config: #"{"auth":{"failuresPerMinute":3}}"#)
        for _ in 0..<3 {
            XCTAssertEqual(try server.request("GET", "/v2/", headers: basic("alice", "guess")).status, 401)
        }
        let checks = try metric(server, "blobstore_registry_password_checks_total")
        for headers in [basic("alice", "guess"), basic("alice", "s3cret pass"), ["Authorization": "Bearer guess"]] {
            let r = try server.request("GET", "/v2/", headers: headers)
            XCTAssertEqual(r.status, 429, r.text)
            XCTAssertEqual(r.errorCode, "TOOMANYREQUESTS")
            let wait = try XCTUnwrap(r.header("Retry-After").flatMap(Int.init))
            XCTAssertTrue((1...60).contains(wait), "\(wait)")
        }
        XCTAssertEqual(try metric(server, "blobstore_registry_password_checks_total"), checks, "no bcrypt for a blocked client")
        // Requests without credentials are not failures: the challenge still comes.
        XCTAssertEqual(try server.request("GET", "/v2/").status, 401)
    }
}
