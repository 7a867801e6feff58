import BlobStore
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// containerd with `blobctl containerd-proxy` as its content store and as its snapshotter
/// "blobstore" (both on one socket), each with its state under one temporary directory;
/// stopped at teardown, with any mount containerd left there undone.
final class ContainerdProcess: @unchecked Sendable {
    let directory: String
    let socket: String
    let proxySocket: String
    let store: String
    private let daemon = Process()
    private var proxy = Process()
    private let proxyArguments: [String]
    private let ctrPath: String

    /// `proxyArguments`: extra `containerd-proxy` flags (`--settle-after 1`).
    init(_ test: XCTestCase, store: String, proxyArguments: [String] = []) throws {
        let containerd = try requireTool("containerd")
        ctrPath = try requireTool("ctr")
        self.store = store
        self.proxyArguments = proxyArguments
        directory = "/tmp/bs-ctrd-" + String(UUID().uuidString.prefix(8)) // sockets need short paths
        try FileManager.default.createDirectory(atPath: directory + "/sock", withIntermediateDirectories: true)
        socket = directory + "/sock/containerd.sock"
        proxySocket = directory + "/sock/proxy.sock"
        let config = """
            version = 2
            root = "\(directory)/root"
            state = "\(directory)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.content.v1.content"]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            [proxy_plugins.blobstore-content]
              type = "content"
              address = "\(proxySocket)"
            [proxy_plugins.blobstore]
              type = "snapshot"
              address = "\(proxySocket)"
            """
        try config.write(toFile: directory + "/config.toml", atomically: true, encoding: .utf8)
        test.addTeardownBlock { [self] in stop() }
        try startProxy()
        try start(daemon, containerd, ["--config", directory + "/config.toml"], log: "containerd.log")
        let deadline = Date().addingTimeInterval(30)
        while (try? ctr(["version"]))?.status != 0 {
            guard daemon.isRunning, Date() < deadline else { throw RegistryTestError("containerd did not come up:\n\(log("containerd.log"))") }
            usleep(100_000)
        }
    }

    /// Starts the proxy (again) and waits until it listens.
    func startProxy() throws {
        proxy = Process()
        let before = log("proxy.log").components(separatedBy: "containerd proxy listening").count
        try start(proxy, try blobctlPath(), ["containerd-proxy", "--store", store, "--socket", proxySocket] + proxyArguments, log: "proxy.log")
        let deadline = Date().addingTimeInterval(30)
        while log("proxy.log").components(separatedBy: "containerd proxy listening").count == before {
            guard proxy.isRunning, Date() < deadline else { throw RegistryTestError("the proxy did not come up:\n\(log("proxy.log"))") }
            usleep(50_000)
        }
        // containerd redials a proxy it lost with a backoff of up to 3 s, and fails calls
        // meanwhile (its GC among them, which does not retry until its next run): wait
        // until a call of each service works. Each proxy plugin is a connection of its own.
        guard daemon.isRunning else { return }
        for call in [["snapshots", "--snapshotter", "blobstore", "ls"], ["content", "ls", "-q"]] {
            while (try? ctr(call, timeout: 10))?.status != 0 {
                guard Date() < deadline else { throw RegistryTestError("containerd did not reach the restarted proxy:\n\(log("containerd.log").suffix(2000))") }
                usleep(100_000)
            }
        }
    }

    /// Waits until `done` (what containerd's GC should bring about), for up to `timeout`.
    /// containerd 1.6's GC scheduler drops a deletion that lands while a collection is
    /// finishing (gc/scheduler.go stamps a collection after its snapshotter cleanup and
    /// skips older events), which then waits for the next deletion of any kind. A lease
    /// created and deleted every 3 s is such a deletion, as a user's next one would be.
    func waitForGC(timeout: TimeInterval, until done: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var nudged = Date()
        while try !done() {
            guard Date() < deadline else { return false }
            if Date().timeIntervalSince(nudged) > 3 {
                let lease = try ctr(["leases", "create"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                _ = try ctr(["leases", "rm", lease])
                nudged = Date()
            }
            usleep(100_000)
        }
        return true
    }

    /// SIGKILL: no shutdown of any kind.
    func killProxy() {
        guard proxy.isRunning else { return }
        kill(proxy.processIdentifier, SIGKILL)
        proxy.waitUntilExit()
    }

    private func start(_ process: Process, _ path: String, _ arguments: [String], log: String) throws {
        let logPath = directory + "/" + log
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try handle.seekToEnd()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try? handle.close()
    }

    func log(_ name: String) -> String { (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? "" }

    func ctr(_ arguments: [String], timeout: TimeInterval = 60) throws -> CommandResult {
        try runTool(ctrPath, ["--address", socket] + arguments, timeout: timeout)
    }

    /// `ctr ARGS < file`.
    func ctr(_ arguments: [String], input file: String) throws -> CommandResult {
        let quoted = (["--address", socket] + arguments).map { "'\($0)'" }.joined(separator: " ")
        return try runTool("/bin/sh", ["-c", "exec '\(ctrPath)' \(quoted) < '\(file)'"], timeout: 60)
    }

    func stop() {
        // Tasks a failed test left running, then the daemons.
        if daemon.isRunning, let tasks = try? ctr(["tasks", "ls", "-q"], timeout: 10), tasks.status == 0 {
            for task in tasks.stdout.split(separator: "\n") {
                _ = try? ctr(["tasks", "kill", "-s", "SIGKILL", String(task)], timeout: 10)
                _ = try? ctr(["tasks", "rm", "-f", String(task)], timeout: 10)
            }
        }
        for p in [daemon, proxy] where p.isRunning {
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
        }
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n").reversed() {
            let fields = line.split(separator: " ")
            if fields.count > 1, fields[1].hasPrefix(directory) || fields[1].hasPrefix(store) { umount2(String(fields[1]), Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
