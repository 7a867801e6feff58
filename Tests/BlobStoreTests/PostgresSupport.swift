import BlobStore
import Foundation
import PostgresIndex
import XCTest

/// A real PostgreSQL 15 server for the cluster-mode tests: `initdb` into a temporary folder
/// (as the `postgres` user when the tests run as root, since PostgreSQL refuses to run as
/// root), listening on a free loopback port with trust authentication. Stopped and removed
/// at teardown. Missing binaries fail under CI (which installs them) and skip elsewhere.
final class PostgresServer: @unchecked Sendable {
    let directory: String
    let port: Int
    private let bin: String
    private var postmaster: Process?

    var url: String { "postgres://blobstore@127.0.0.1:\(port)/postgres" }

    init(_ test: XCTestCase) throws {
        let candidates = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
        guard let bin = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/postgres") }) else {
            let missing = "PostgreSQL is not installed (apt-get install postgresql-15)"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("\(missing): CI must install it (.ci/install-test-deps.sh)") }
            throw XCTSkip(missing)
        }
        self.bin = bin
        directory = NSTemporaryDirectory() + "blobstore-pg-" + UUID().uuidString
        port = try freePort()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try run(["chown", "postgres:postgres", directory], asPostgres: false)
        let initdb = try run([bin + "/initdb", "-D", directory + "/data", "-U", "blobstore", "--auth=trust", "--no-sync", "-E", "UTF8"])
        guard initdb.status == 0 else { throw RegistryTestError("initdb failed: \(initdb.stderr)") }
        test.addTeardownBlock { [self] in
            self.stop(mode: "immediate")
            try? FileManager.default.removeItem(atPath: self.directory)
        }
        try start()
    }

    /// Starts the server (again) and waits until it accepts connections. The postmaster is
    /// this process's own child (through `setpriv`, which execs it as the `postgres` user):
    /// `pg_ctl` daemonizes it with our output files still open, so nothing could wait on it.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: getuid() == 0 ? "/usr/bin/setpriv" : bin + "/postgres")
        let server = [bin + "/postgres", "-D", directory + "/data", "-p", "\(port)", "-k", directory,
                      "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=64MB"]
        process.arguments = getuid() == 0 ? ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + server : Array(server.dropFirst())
        _ = FileManager.default.createFile(atPath: directory + "/server.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/server.log"))
        log.seekToEndOfFile()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try? log.close()
        postmaster = process
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if try run([bin + "/pg_isready", "-h", "127.0.0.1", "-p", "\(port)", "-t", "1"]).status == 0 { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        throw RegistryTestError("PostgreSQL did not start: \((try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "")")
    }

    /// Stops the server: "fast" (SIGINT) rolls back open transactions and closes
    /// connections, "immediate" (SIGQUIT) is a crash (recovery on the next start).
    func stop(mode: String = "fast") {
        guard let process = postmaster else { return }
        kill(process.processIdentifier, mode == "immediate" ? SIGQUIT : SIGINT)
        process.waitUntilExit()
        postmaster = nil
    }

    @discardableResult
    private func run(_ arguments: [String], asPostgres: Bool = true) throws -> CommandResult {
        if asPostgres && getuid() == 0 {
            return try runTool("/usr/sbin/runuser", ["-u", "postgres", "--"] + arguments, directory: "/", timeout: 120)
        }
        return try runTool(arguments[0].hasPrefix("/") ? arguments[0] : "/usr/bin/" + arguments[0], Array(arguments.dropFirst()), timeout: 120)
    }

    /// Settings for a fresh schema of this server: one store per test.
    func settings(schema: String = "t_" + UUID().uuidString.prefix(8).lowercased().replacingOccurrences(of: "-", with: "")) -> PostgresSettings {
        PostgresSettings(url: url, schema: schema)
    }

    /// Writes a cluster config for one node: the shared index and packs, and the node's folder.
    func writeClusterConfig(at path: String, schema: String, packs: String, node: String) throws {
        let config: [String: Any] = ["index": ["url": url, "schema": schema], "packs": ["directory": packs], "node": ["directory": node]]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path))
    }
}

/// A loopback TCP port nobody listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw RegistryTestError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { throw RegistryTestError("bind failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Pushes `images[i]` as `team/app<i>:v1` through `nodes[i % nodes.count]`, all at once,
/// while `blobctl gc` runs again and again on `gcStore`; returns what failed and how many
/// collections ran meanwhile.
func pushConcurrentlyWhileCollecting(_ images: [ImageFixture], to nodes: [RegistryProcess], gcStore: String) throws -> (failures: [String], collections: Int) {
    let failures = LockedList()
    let pushing = DispatchGroup()
    pushing.enter()
    DispatchQueue.global().async {
        DispatchQueue.concurrentPerform(iterations: images.count) { i in
            do { try nodes[i % nodes.count].pushImage("team/app\(i)", tag: "v1", images[i]) } catch { failures.append("push \(i): \(error)") }
        }
        pushing.leave()
    }
    var collections = 0
    while pushing.wait(timeout: .now()) == .timedOut {
        let gc = try runBlobctl(["--store", gcStore, "gc", "--json"])
        if gc.status != 0 { failures.append("gc: \(gc.stderr)") }
        collections += 1
    }
    return (failures.items, collections)
}
