import BlobStore
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `blobctl serve` under abuse: every resource a client can make the server hold has a
/// limit, and past it the server answers 429 or 503 with `Retry-After` instead of growing.
final class RegistryLimitsTests: XCTestCase {
    private func uploadLocation(_ server: RegistryProcess, _ name: String) throws -> String {
        let r = try server.request("POST", "/v2/\(name)/blobs/uploads/")
        XCTAssertEqual(r.status, 202, r.text)
        return try XCTUnwrap(r.header("Location"))
    }

    private func assertShed(_ r: HTTPResult, _ status: Int, _ code: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.text, file: file, line: line)
        XCTAssertEqual(r.errorCode, code, file: file, line: line)
        XCTAssertNotNil(r.header("Retry-After").flatMap(Int.init), "Retry-After: \(r.headers)", file: file, line: line)
    }

    /// Open upload sessions are capped: the next POST is 429 until one ends.
    func testUploadSessionsAreCapped() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxUploadSessions":3}}"#)
        let locations = try (0..<3).map { _ in try uploadLocation(server, "sessions") }
        assertShed(try server.request("POST", "/v2/sessions/blobs/uploads/"), 429, "TOOMANYREQUESTS")
        XCTAssertEqual(try server.request("DELETE", locations[0]).status, 204)
        _ = try uploadLocation(server, "sessions")
        // A finished upload frees its place too.
        var random = TestRandom(seed: 31)
        let blob = random.bytes(5000)
        XCTAssertEqual(try server.request("PUT", locations[1] + "?digest=\(blob.sha256)", body: blob).status, 201)
        _ = try uploadLocation(server, "sessions")
        assertShed(try server.request("POST", "/v2/sessions/blobs/uploads/"), 429, "TOOMANYREQUESTS")
        XCTAssertTrue(try server.request("GET", "/metrics").text.contains(#"blobstore_registry_shed_total{reason="uploads"} 2"#))
    }

    /// The cap holds under concurrency: 40 clients racing for 5 places get exactly 5.
    func testUploadSessionCapHoldsUnderConcurrency() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxUploadSessions":5}}"#)
        let port = server.port
        let statuses = UncheckedBox([Int](repeating: 0, count: 40)), lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 40) { i in
            let status = (try? HTTPResult.exchange(port: port, method: "POST", target: "/v2/race/blobs/uploads/", headers: [:], body: nil, timeout: 30))?.status ?? -1
            lock.lock(); statuses.value[i] = status; lock.unlock()
        }
        let counts = Dictionary(statuses.value.map { ($0, 1) }, uniquingKeysWith: +)
        XCTAssertEqual(counts, [202: 5, 429: 35])
    }

    /// Blobs have a size limit by default (64 GiB), checked against the declared length
    /// before any byte is read; a configured one applies across an upload's PATCHes.
    func testBlobSizeIsLimited() throws {
        let server = try RegistryProcess(self)
        // 65 GiB declared, nothing sent: refused at once, not after waiting for the body.
        let huge = try server.request("POST", "/v2/big/blobs/uploads/?digest=\(Digest.empty)",
                                      headers: ["Content-Length": String(65 << 30)], timeout: 5)
        XCTAssertEqual(huge.status, 413, huge.text)
        XCTAssertEqual(huge.errorCode, "SIZE_INVALID")
        server.stop()

        let small = try RegistryProcess(self, config: #"{"limits":{"maxBlobBytes":1000}}"#)
        var random = TestRandom(seed: 32)
        let blob = random.bytes(1500)
        XCTAssertEqual(try small.request("POST", "/v2/small/blobs/uploads/?digest=\(blob.sha256)", body: blob).status, 413)
        let location = try uploadLocation(small, "small")
        XCTAssertEqual(try small.request("PATCH", location, body: Array(blob[..<700])).status, 202)
        let over = try small.request("PATCH", location, headers: ["Content-Range": "700-1499"], body: Array(blob[700...]))
        XCTAssertEqual(over.status, 413, over.text)
        XCTAssertEqual(over.errorCode, "SIZE_INVALID")
        XCTAssertEqual(try small.request("GET", "/v2/small/blobs/\(blob.sha256)").status, 404)
    }

    /// Connections beyond the cap are closed at once, unanswered; the held ones keep
    /// working, and when they go, new connections are served again.
    func testConnectionsAreCapped() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxConnections":4}}"#)
        usleep(200_000) // the start-up probes' connections are gone
        let held = try (0..<4).map { _ in try RawConnection(port: server.port) }
        for c in held { // a request each, kept alive: each connection is set up and counted
            c.send("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try c.readKeptAliveResponse().status, 200)
        }
        let extra = try RawConnection(port: server.port)
        extra.send("GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(extra.readToClose(), [], "closed without an answer")
        held[0].send("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try held[0].readKeptAliveResponse().status, 200)
        withExtendedLifetime(held) {} // closed after this, by deinit
        try eventuallyServed(server)
        // At least the one above: a retry of eventuallyServed made before the held
        // connections' closes were seen (a loaded machine) is shed and counted too.
        let metrics = try server.request("GET", "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix(#"blobstore_registry_shed_total{reason="connections"} "#) }
        let shed = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        XCTAssertGreaterThanOrEqual(shed, 1, metrics)
    }

    /// One client address cannot take every place: past `maxConnectionsPerClient` its
    /// connections are closed, while another client is still served.
    func testConnectionsArePerClient() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxConnections":100,"maxConnectionsPerClient":2}}"#)
        usleep(200_000)
        let held = try (0..<2).map { _ in try RawConnection(port: server.port, from: "127.0.0.2") }
        for c in held {
            c.send("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try c.readKeptAliveResponse().status, 200)
        }
        let third = try RawConnection(port: server.port, from: "127.0.0.2")
        third.send("GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(third.readToClose(), [], "the third connection from 127.0.0.2 is closed")
        let other = try RawConnection(port: server.port, from: "127.0.0.3")
        other.send("GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(try other.readResponse().status, 200, "another client is served")
        withExtendedLifetime(held) {} // Swift may release them after their last use
    }

    /// A connection that sends nothing is closed after the idle timeout instead of
    /// holding a place forever.
    func testIdleConnectionsAreClosed() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"idleTimeoutSeconds":1}}"#)
        let silent = try RawConnection(port: server.port, timeout: 10)
        let start = Date()
        XCTAssertNotNil(silent.readToClose(), "a silent connection is closed")
        XCTAssertLessThan(Date().timeIntervalSince(start), 9)
    }

    /// A client that trickles its request head (slowloris) is closed after
    /// `requestHeadTimeoutSeconds`, however recently it sent a byte.
    func testSlowRequestHeadsAreCut() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"requestHeadTimeoutSeconds":1,"idleTimeoutSeconds":60}}"#)
        let slow = try RawConnection(port: server.port, timeout: 10)
        let start = Date()
        slow.send("GET /v2/ HTTP/1.1\r\n")
        for i in 0..<6 { // a header line every 0.4 s: never idle, never done
            usleep(400_000)
            slow.send("X-Slow-\(i): y\r\n")
        }
        XCTAssertNotNil(slow.readToClose(), "the trickling connection is closed")
        XCTAssertLessThan(Date().timeIntervalSince(start), 9)
        XCTAssertEqual(try server.request("GET", "/v2/").status, 200)
    }

    /// Requests in progress are capped, a download counting until its body is written:
    /// two stalled downloads fill a cap of two, the third request is 503; when they go,
    /// requests are served again.
    func testRequestsInProgressAreCapped() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxConcurrentRequests":2}}"#)
        var random = TestRandom(seed: 33)
        let blob = random.bytes(48 << 20)
        try server.pushBlob("stall", blob)
        var stalled = try (0..<2).map { _ in try RawConnection(port: server.port) }
        for c in stalled { c.send("GET /v2/stall/blobs/\(blob.sha256) HTTP/1.1\r\nHost: x\r\n\r\n") }
        // The downloads fill the socket buffers and wait for the reader that never comes.
        let busy = try eventually { () -> HTTPResult in
            let r = try server.request("GET", "/v2/")
            guard r.status == 503 else { throw RegistryTestError("not yet shed: \(r.status)") }
            return r
        }
        assertShed(busy, 503, "UNAVAILABLE")
        XCTAssertEqual(try server.request("GET", "/metrics").status, 200, "metrics are not shed")
        stalled.removeAll()
        try eventuallyServed(server)
        XCTAssertEqual(try server.request("GET", "/v2/stall/blobs/\(blob.sha256)").body, blob)
    }

    /// Body writes wait for one of `maxConcurrentWrites` places, `writeWaitSeconds` at
    /// most, then get 503; the stalled write still completes when its client goes on.
    func testWritesWaitForAPlace() throws {
        let server = try RegistryProcess(self, config: #"{"limits":{"maxConcurrentWrites":1,"writeWaitSeconds":1}}"#)
        let first = try uploadLocation(server, "writes"), second = try uploadLocation(server, "writes")
        var random = TestRandom(seed: 34)
        let blob = random.bytes(100_000)
        let slow = try RawConnection(port: server.port)
        slow.send("PATCH \(first) HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: \(blob.count)\r\n\r\n")
        slow.send(Array(blob[..<1000]))
        usleep(300_000)
        assertShed(try server.request("PATCH", second, body: [1, 2, 3]), 503, "UNAVAILABLE")
        slow.send(Array(blob[1000...]))
        XCTAssertEqual(try slow.readResponse(method: "PATCH").status, 202)
        XCTAssertEqual(try server.request("PATCH", second, body: [1, 2, 3]).status, 202)
        XCTAssertEqual(try server.request("PUT", first + "?digest=\(blob.sha256)").status, 201)
        XCTAssertEqual(try server.request("GET", "/v2/writes/blobs/\(blob.sha256)").body, blob)
    }

    private func eventuallyServed(_ server: RegistryProcess) throws {
        _ = try eventually { () -> Int in
            let status = try server.request("GET", "/v2/").status
            guard status == 200 else { throw RegistryTestError("still \(status)") }
            return status
        }
    }

    /// Retries `work` for up to 10 s until it does not throw.
    private func eventually<T>(_ work: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(10)
        while true {
            do { return try work() } catch {
                if Date() > deadline { throw error }
                usleep(100_000)
            }
        }
    }
}
