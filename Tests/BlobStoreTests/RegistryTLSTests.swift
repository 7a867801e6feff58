import Foundation
import XCTest

/// `blobctl serve` over TLS: a certificate without its key is a usage error, not a silent
/// fall-back to plain HTTP, and clients offering only TLS 1.0 or 1.1 are refused.
final class RegistryTLSTests: XCTestCase {
    func testCertificateWithoutKeyIsAUsageError() throws {
        let dir = try makeTemporaryDirectory(self)
        for flags in [["--tls-cert", dir + "/cert.pem"], ["--tls-key", dir + "/key.pem"]] {
            let r = try runBlobctl(["serve", "--store", dir + "/store", "--addr", "127.0.0.1:0"] + flags)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("--tls-cert and --tls-key go together"), r.stderr)
        }
    }

    func testOnlyTLS12AndNewerAreAccepted() throws {
        let openssl = try requireTool("openssl")
        let dir = try makeTemporaryDirectory(self)
        let made = try runTool(openssl, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/key.pem",
                                         "-out", dir + "/cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let log = dir + "/serve.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: try blobctlPath())
        server.arguments = ["serve", "--store", dir + "/store", "--addr", "127.0.0.1:0",
                            "--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        server.standardOutput = handle
        server.standardError = handle
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        var port = 0
        for _ in 0..<1500 where port == 0 {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let match = text.range(of: #"port=[0-9]+"#, options: .regularExpression) { port = Int(text[match].dropFirst(5)) ?? 0 }
            if port == 0 { usleep(20_000) }
        }
        XCTAssertNotEqual(port, 0, "the server reported its port")
        func handshake(_ version: String) throws -> String {
            // SECLEVEL=0 lets this client offer the old versions at all; the server must refuse them.
            let r = try runTool(openssl, ["s_client", "-connect", "127.0.0.1:\(port)", version, "-cipher", "DEFAULT@SECLEVEL=0"])
            return r.stdout + r.stderr
        }
        let modern = try handshake("-tls1_2")
        XCTAssertTrue(modern.contains("New, TLSv1.2, Cipher is") && !modern.contains("Cipher is (NONE)"), "TLS 1.2 is accepted:\n\(modern)")
        for old in ["-tls1", "-tls1_1"] {
            let text = try handshake(old)
            XCTAssertTrue(text.contains("alert protocol version") && text.contains("Cipher is (NONE)"), "\(old) refused:\n\(text)")
        }
    }
}
