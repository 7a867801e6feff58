import BlobStore
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `blobctl serve` subprocess on a free loopback port (the kernel picks it: `--addr
/// 127.0.0.1:0`, and the server logs the port it bound), over a store in a temporary
/// folder. Teardown stops it with SIGTERM and asserts it exits 0: a graceful shutdown.
final class RegistryProcess: @unchecked Sendable {
    let directory: String
    let storePath: String
    let logPath: String
    private(set) var port = 0
    private let process = Process()
    private let lock = NSLock()
    private var stopped = false

    var base: String { "127.0.0.1:\(port)" }

    /// Starts the server. `arguments` are extra `serve` flags; `config` is written to a
    /// file passed as `--config`; `storePath` reuses a store (e.g. one `blobctl image
    /// import` filled).
    init(_ test: XCTestCase, arguments: [String] = [], config: String? = nil, storePath: String? = nil,
         file: StaticString = #filePath, line: UInt = #line) throws {
        directory = try makeTemporaryDirectory(test)
        self.storePath = storePath ?? directory + "/store"
        logPath = directory + "/serve.log"
        var args = ["serve", "--addr", "127.0.0.1:0", "--store", self.storePath] + arguments
        if let config {
            let configPath = directory + "/config.json"
            try Data(config.utf8).write(to: URL(fileURLWithPath: configPath))
            args += ["--config", configPath]
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: try blobctlPath())
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        try? logHandle.close()
        // Registered after the temporary folder's removal block, so it runs before it.
        test.addTeardownBlock { [self] in self.stop(file: file, line: line) }

        let deadline = Date().addingTimeInterval(30)
        while port == 0 {
            let text = log()
            if let match = text.range(of: #"port=[0-9]+"#, options: .regularExpression) {
                port = Int(text[match].dropFirst(5)) ?? 0
                break
            }
            guard process.isRunning else { throw RegistryTestError("blobctl serve exited before listening:\n\(text)") }
            guard Date() < deadline else { throw RegistryTestError("blobctl serve did not report its port:\n\(text)") }
            usleep(20_000)
        }
        // Listening once the port is logged; still, wait until /v2/ answers at all (a 401
        // from an authenticating server counts).
        while true {
            if (try? request("GET", "/v2/", timeout: 2)) != nil { break }
            guard process.isRunning, Date() < deadline else { throw RegistryTestError("GET /v2/ never answered:\n\(log())") }
            usleep(20_000)
        }
    }

    func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// SIGTERM, then wait for the exit and check it was clean. Idempotent.
    /// SIGKILLs the server: no graceful shutdown, no pack sealed, nothing closed.
    func killHard() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop(file: StaticString = #filePath, line: UInt = #line) {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        guard process.isRunning else {
            XCTFail("blobctl serve died during the test (status \(process.terminationStatus)):\n\(log())", file: file, line: line)
            return
        }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTFail("blobctl serve did not stop within 20 s of SIGTERM:\n\(log())", file: file, line: line)
            return
        }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, "blobctl serve was killed by a signal:\n\(log())", file: file, line: line)
        XCTAssertEqual(process.terminationStatus, 0, "blobctl serve did not shut down gracefully:\n\(log())", file: file, line: line)
    }

    // MARK: HTTP

    func request(_ method: String, _ target: String, headers: [String: String] = [:], body: [UInt8]? = nil,
                 timeout: Int = 30) throws -> HTTPResult {
        try HTTPResult.exchange(port: port, method: method, target: target, headers: headers, body: body, timeout: timeout)
    }

    /// A monolithic upload (`POST ?digest=`); fails the test unless 201.
    func pushBlob(_ name: String, _ bytes: [UInt8], headers: [String: String] = [:],
                  file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try request("POST", "/v2/\(name)/blobs/uploads/?digest=\(bytes.sha256)",
                            headers: ["Content-Type": "application/octet-stream"].merging(headers) { $1 }, body: bytes)
        guard r.status == 201 else {
            throw RegistryTestError("push of blob \(bytes.sha256) to \(name): \(r.status) \(r.text)")
        }
    }

    /// PUT a manifest; returns the response (201 expected by the caller).
    @discardableResult
    func pushManifest(_ name: String, _ reference: String, _ bytes: [UInt8],
                      mediaType: String = "application/vnd.oci.image.manifest.v1+json",
                      headers: [String: String] = [:]) throws -> HTTPResult {
        try request("PUT", "/v2/\(name)/manifests/\(reference)",
                    headers: ["Content-Type": mediaType].merging(headers) { $1 }, body: bytes)
    }

    /// Every blob of `image`, then its manifest under `tag`.
    func pushImage(_ name: String, tag: String, _ image: ImageFixture, headers: [String: String] = [:]) throws {
        for blob in [image.config] + image.layers { try pushBlob(name, blob, headers: headers) }
        let r = try pushManifest(name, tag, image.manifest, headers: headers)
        guard r.status == 201 else { throw RegistryTestError("push of manifest \(name):\(tag): \(r.status) \(r.text)") }
    }
}

struct RegistryTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One HTTP/1.1 exchange over a plain socket (`Connection: close`): nothing between the
/// test and the server's bytes, no client-side redirects, retries or header rewriting.
struct HTTPResult: Sendable {
    var status: Int
    /// Header names lowercased; repeated headers joined with ", ".
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The first error code of an OCI error body, `{"errors":[{"code":…}]}`.
    var errorCode: String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let errors = object["errors"] as? [[String: Any]] else { return nil }
        return errors.first?["code"] as? String
    }

    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }

    static func exchange(port: Int, method: String, target: String, headers: [String: String], body: [UInt8]?,
                     timeout: Int) throws -> HTTPResult {
        let connection = try RawConnection(port: port, timeout: timeout)
        defer { withExtendedLifetime(connection) {} } // it closes the socket when released
        let fd = connection.fd

        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        let hasLength = headers.keys.contains { ["content-length", "transfer-encoding"].contains($0.lowercased()) }
        if !hasLength, body != nil || ["POST", "PUT", "PATCH"].contains(method) {
            head += "Content-Length: \(body?.count ?? 0)\r\n"
        }
        head += "\r\n"
        let out = Array(head.utf8) + (body ?? [])
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break } // the server answered early and closed: read what it said
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw RegistryTestError("\(method) \(target): no response within \(timeout) s")
                }
                if received.isEmpty { throw RegistryTestError("\(method) \(target): recv errno \(errno)") }
                break
            }
            if n == 0 { break }
            received.append(contentsOf: buffer[0..<n])
        }
        return try parse(received, method: method, target: target)
    }

    static func parse(_ data: [UInt8], method: String, target: String) throws -> HTTPResult {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = data.firstRange(of: separator) else {
            throw RegistryTestError("\(method) \(target): incomplete response (\(data.count) bytes)")
        }
        let lines = String(decoding: data[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw RegistryTestError("\(method) \(target): bad status line \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[key] = headers[key].map { $0 + ", " + value } ?? value
        }
        var body = Array(data[end.upperBound...])
        if method == "HEAD" || status == 204 || status == 304 {
            body = []
        } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try dechunk(body)
        } else if let length = headers["content-length"].flatMap(Int.init) {
            guard body.count >= length else {
                throw RegistryTestError("\(method) \(target): body has \(body.count) of \(length) bytes")
            }
            body = Array(body.prefix(length))
        }
        return HTTPResult(status: status, headers: headers, body: body)
    }

    static func dechunk(_ data: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = data[i...].firstRange(of: [13, 10]) else { throw RegistryTestError("bad chunked body") }
            let sizeText = String(decoding: data[i..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";")[0]
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw RegistryTestError("bad chunk size \(sizeText)")
            }
            i = lineEnd.upperBound
            if size == 0 { return out }
            guard i + size <= data.count else { throw RegistryTestError("truncated chunk") }
            out.append(contentsOf: data[i..<i + size])
            i += size + 2
        }
    }
}

// MARK: External clients

/// The path of an external client the tests drive (skopeo, htpasswd, python3 with a
/// module). Missing: a failure under CI (which must install it, see .ci/run), a skip
/// elsewhere.
func requireTool(_ name: String, pythonModule: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        .split(separator: ":").map { "\($0)/\(name)" }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    var missing: String?
    if let path {
        if let module = pythonModule, (try? runTool(path, ["-c", "import \(module)"], timeout: 60))?.status != 0 {
            missing = "python module \(module) is not installed (pip install \(module))"
        }
    } else {
        missing = "\(name) is not installed"
    }
    if let missing {
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("\(missing): CI must install it (.ci/run)", file: file, line: line)
            throw RegistryTestError(missing)
        }
        throw XCTSkip(missing)
    }
    return path!
}

/// Runs a program to completion (output to files, so neither pipe can fill and block).
@discardableResult
func runTool(_ path: String, _ arguments: [String], directory: String? = nil, environment: [String: String] = [:],
             timeout: TimeInterval = 120) throws -> CommandResult {
    let scratch = NSTemporaryDirectory() + "blobstore-tool-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    _ = FileManager.default.createFile(atPath: scratch + "/out", contents: nil)
    _ = FileManager.default.createFile(atPath: scratch + "/err", contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/out"))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/err"))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    try process.run()
    try? out.close()
    try? err.close()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        throw RegistryTestError("\(path) \(arguments.joined(separator: " ")) ran over \(Int(timeout)) s")
    }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOfFile: scratch + "/out", encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: scratch + "/err", encoding: .utf8)) ?? "")
}

// MARK: Fixtures

/// An image of `layerCount` small random layers (tars) — a real image, quickly made.
func registryImage(seed: UInt64, layerCount: Int = 2, layerBytes: Int = 40_000, label: String? = nil) throws -> ImageFixture {
    var random = TestRandom(seed: seed)
    let layers = try (0..<layerCount).map { i in try ImageFixture.layer([("file\(i)", random.bytes(layerBytes + i))]) }
    return ImageFixture(layers: layers, label: label ?? "seed-\(seed)")
}

/// A JSON object as canonical bytes (sorted keys), for hand-made manifests.
func jsonBytes(_ object: Any) throws -> [UInt8] {
    Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
}

/// A loopback TCP connection the test drives by hand: to hold a connection open, send half
/// a request, or stop reading a response, as an abusive client does.
final class RawConnection {
    let fd: Int32

    /// `from`: the local address to connect from (any of 127.0.0.0/8 is this host), so a
    /// test can be two clients.
    init(port: Int, timeout: Int = 10, from source: String? = nil) throws {
        #if canImport(Glibc)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw RegistryTestError("socket: errno \(errno)") }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { close(fd); throw RegistryTestError("bind to \(source): errno \(errno)") }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw RegistryTestError("connect to 127.0.0.1:\(port): errno \(errno)") }
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Everything until the server closes (or the timeout), parsed as one response.
    func readResponse(method: String = "GET", target: String = "/") throws -> HTTPResult {
        try HTTPResult.parse(readAll(), method: method, target: target)
    }

    /// One response on a connection kept alive: the head, then Content-Length bytes of body.
    func readKeptAliveResponse() throws -> HTTPResult {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if let end = received.firstRange(of: [13, 10, 13, 10]) {
                let head = String(decoding: received[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                if received.count >= end.upperBound + length { return try HTTPResult.parse(received, method: "GET", target: "/") }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw RegistryTestError("connection ended before a whole response") }
            received.append(contentsOf: buffer[0..<n])
        }
    }

    /// Bytes until EOF; nil if the server kept the connection open past the timeout.
    func readToClose() -> [UInt8]? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? nil : received }
            if n == 0 { return received }
            received.append(contentsOf: buffer[0..<n])
        }
    }

    private func readAll() throws -> [UInt8] {
        guard let bytes = readToClose() else { throw RegistryTestError("no complete response before the timeout") }
        return bytes
    }
}
