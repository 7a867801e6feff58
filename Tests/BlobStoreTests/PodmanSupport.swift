import Foundation
import XCTest

/// Podman, the second engine, with its storage, run root and config in a temporary folder.
/// Its `containers.conf` sets what this sandbox needs: no default ulimits (raising
/// RLIMIT_NOFILE needs CAP_SYS_RESOURCE, which is not in the bounding set), no network,
/// cgroupfs and file-based events (no systemd). Needs Debian's podman; .ci/run installs it.
final class PodmanEngine: @unchecked Sendable {
    let directory: String
    private let podmanPath: String

    /// `volumePlugins`: driver name → socket, for `[engine.volume_plugins]`.
    init(_ test: XCTestCase, volumePlugins: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws {
        podmanPath = try requireTool("podman", file: file, line: line)
        // A short path: podman refuses a run root longer than 50 characters.
        directory = "/tmp/bs-podman-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: directory + "/auth.json")) // no credentials
        try Data(("""
            [containers]
            default_ulimits = []
            netns = "none"
            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            [engine.volume_plugins]
            """ + volumePlugins.map { "\n\($0.key) = \"\($0.value)\"" }.joined() + "\n")
            .utf8).write(to: URL(fileURLWithPath: directory + "/containers.conf"))
        // Podman's overlay mounts and storage go first, then the folder.
        test.addTeardownBlock { [self] in
            _ = try? podman(["system", "reset", "--force"], timeout: 120)
            _ = try? runTool("/bin/rm", ["-rf", directory], timeout: 120)
        }
    }

    @discardableResult
    func podman(_ arguments: [String], timeout: TimeInterval = 300) throws -> CommandResult {
        try runTool(podmanPath, ["--root", directory + "/root", "--runroot", directory + "/run", "--storage-driver", "overlay"] + arguments,
                    environment: ["CONTAINERS_CONF": directory + "/containers.conf", "REGISTRY_AUTH_FILE": directory + "/auth.json"],
                    timeout: timeout)
    }

    /// `podman ARGS`, throwing unless it exits 0; its standard output.
    @discardableResult
    func run(_ arguments: [String]) throws -> String {
        let r = try podman(arguments)
        guard r.status == 0 else { throw RegistryTestError("podman \(arguments.joined(separator: " ")) exited \(r.status):\n\(r.stderr)") }
        return r.stdout
    }

    /// An image of busybox-static's commands, from `podman import`.
    func importBusybox(as tag: String) throws {
        try run(["import", try busyboxRootTar(in: directory), tag])
    }
}
