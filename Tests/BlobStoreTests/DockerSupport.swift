import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A real Docker Engine for one test: `dockerd` started by hand with its state, exec root
/// and socket in a temporary folder (no bridge, no iptables: containers run with
/// `--network none`), stopped with SIGTERM at teardown. Needs Debian's docker.io; .ci/run
/// installs it.
final class DockerEngine: @unchecked Sendable {
    let directory: String
    let socket: String
    private let process = Process()
    private let dockerPath: String

    init(_ test: XCTestCase, file: StaticString = #filePath, line: UInt = #line) throws {
        let dockerd = try requireTool("dockerd", file: file, line: line)
        dockerPath = try requireTool("docker", file: file, line: line)
        // A short path: the socket's must fit in sun_path.
        directory = "/tmp/bs-docker-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socket = directory + "/docker.sock"
        let log = directory + "/dockerd.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: dockerd)
        process.arguments = ["--data-root", directory + "/root", "--exec-root", directory + "/exec",
                             "--pidfile", directory + "/dockerd.pid", "-H", "unix://" + socket,
                             "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=overlay2"]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try? handle.close()
        test.addTeardownBlock { [self] in self.stop() }
        let deadline = Date().addingTimeInterval(30)
        while (try? docker(["version"], timeout: 10))?.status != 0 {
            guard process.isRunning, Date() < deadline else {
                throw RegistryTestError("dockerd did not come up:\n" + ((try? String(contentsOfFile: log, encoding: .utf8)) ?? ""))
            }
            usleep(100_000)
        }
    }

    /// `docker ARGS` against this engine.
    @discardableResult
    func docker(_ arguments: [String], directory: String? = nil, timeout: TimeInterval = 300) throws -> CommandResult {
        try runTool(dockerPath, arguments, directory: directory,
                    environment: ["DOCKER_HOST": "unix://" + socket, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": self.directory + "/client"],
                    timeout: timeout)
    }

    /// `docker ARGS`, failing the test unless it exits 0; its standard output.
    @discardableResult
    func run(_ arguments: [String], directory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try docker(arguments, directory: directory)
        guard r.status == 0 else { throw RegistryTestError("docker \(arguments.joined(separator: " ")) exited \(r.status):\n\(r.stderr)") }
        return r.stdout
    }

    /// An image of busybox-static's commands, from `docker import` (no registry needed).
    func importBusybox(as tag: String) throws {
        try run(["import", try busyboxRootTar(in: directory), tag])
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        // Its overlay mounts are gone with it; what is left is plain files.
        _ = try? runTool("/bin/rm", ["-rf", directory], timeout: 120)
    }
}

/// A tar of a root file system holding busybox-static and links to its common commands:
/// an image for `docker import` or `podman import`, made without any registry.
func busyboxRootTar(in directory: String) throws -> String {
    let root = directory + "/busybox-root"
    try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root + "/bin/busybox")
    for command in ["sh", "ls", "cat", "echo", "head", "mkdir", "sha256sum", "wc", "cut", "sleep"] {
        try FileManager.default.createSymbolicLink(atPath: root + "/bin/" + command, withDestinationPath: "busybox")
    }
    let tar = directory + "/busybox.tar"
    let made = try runTool("/bin/tar", ["-C", root, "-cf", tar, "."])
    guard made.status == 0 else { throw RegistryTestError("tar: \(made.stderr)") }
    return tar
}
