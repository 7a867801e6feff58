import BlobStore
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `blobctl volume-plugin` as a real Docker Engine's volume driver.
final class DockerVolumePluginTests: XCTestCase {
    /// A `blobctl volume-plugin` process on a socket of its own in /run/docker/plugins
    /// (the driver's name is the socket's, unique per test).
    final class PluginProcess: @unchecked Sendable {
        let driver: String
        let socket: String
        let store: String
        private var process: Process?
        private let log: String

        init(_ test: XCTestCase, store: String) throws {
            driver = "bs-" + String(UUID().uuidString.prefix(8)).lowercased()
            socket = "/run/docker/plugins/\(driver).sock"
            self.store = store
            log = store + ".plugin.log"
            try start()
            test.addTeardownBlock { [self] in stop(signal: SIGTERM) }
        }

        func start() throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try blobctlPath())
            p.arguments = ["volume-plugin", "--store", store, "--socket", socket]
            if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            handle.seekToEndOfFile()
            p.standardOutput = handle
            p.standardError = handle
            try p.run()
            try? handle.close()
            process = p
            let deadline = Date().addingTimeInterval(20)
            while !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("volume plugin listening") || !p.isRunning {
                guard p.isRunning, Date() < deadline else { throw RegistryTestError("volume-plugin did not start:\n\(logText)") }
                usleep(20_000)
            }
        }

        var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        func stop(signal: Int32) {
            guard let p = process, p.isRunning else { return }
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            process = nil
        }
    }

    private func volumes(_ store: String) throws -> [[String: Any]] {
        let ls = try runBlobctl(["--store", store, "volume", "ls", "--json"])
        XCTAssertEqual(ls.status, 0, ls.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ls.stdout.utf8)) as? [[String: Any]])
    }

    /// Create, write from one container, read from the next; two containers on one volume
    /// at once; the plugin killed with SIGKILL while a container uses the volume and
    /// started again, losing nothing; `docker volume rm` then `gc` frees the bytes; bad
    /// options and names are refused with nothing created.
    func testDockerUsesBlobStoreVolumes() throws {
        let docker = try DockerEngine(self)
        try docker.importBusybox(as: "base:1")
        let store = try makeTemporaryDirectory(self) + "/store"
        let plugin = try PluginProcess(self, store: store)
        let d = plugin.driver
        func sh(_ volume: String, _ script: String) throws -> String {
            try docker.run(["run", "--rm", "--network", "none", "--volume-driver", d, "-v", "\(volume):/data", "base:1", "sh", "-c", script])
        }

        XCTAssertEqual(try docker.run(["volume", "create", "-d", d, "data"]), "data\n")
        XCTAssertEqual(try sh("data", "echo hello > /data/greeting && mkdir -p /data/sub && head -c 2000000 /dev/urandom > /data/sub/blob && sha256sum /data/sub/blob | cut -c1-64"), try sh("data", "sha256sum /data/sub/blob | cut -c1-64"))
        XCTAssertEqual(try sh("data", "cat /data/greeting"), "hello\n")
        // The last unmount records the content as the volume's snapshot, in the background:
        // it shows up in the store within moments.
        let deadline = Date().addingTimeInterval(30)
        while try volumes(store).first(where: { $0["name"] as? String == "data" })?["snapshot"] as? String == nil {
            guard Date() < deadline else { return XCTFail("no snapshot was recorded:\n\(plugin.logText)") }
            usleep(100_000)
        }
        let export = try runBlobctl(["--store", store, "volume", "export", "data", "-o", store + ".tar"])
        XCTAssertEqual(export.status, 0, export.stderr)
        let listing = try runTool("/bin/tar", ["-tf", store + ".tar"])
        XCTAssertTrue(listing.stdout.contains("greeting"), listing.stdout)

        // Two containers at once: both see each other's writes; one version when both are done.
        let first = try docker.run(["run", "-d", "--network", "none", "--volume-driver", d, "-v", "data:/data", "base:1", "sh", "-c", "echo one > /data/one; sleep 30"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try sh("data", "sleep 1; echo two > /data/two; cat /data/one"), "one\n")
        let busy = try runBlobctl(["--store", store, "volume", "rm", "data"])
        XCTAssertNotEqual(busy.status, 0, "a volume Docker has mounted is not removed behind its back")
        XCTAssertTrue(busy.stderr.contains("mounted by docker-plugin"), busy.stderr)
        // Kill the plugin while the first container still has the volume mounted; start it again.
        plugin.stop(signal: SIGKILL)
        try plugin.start()
        try docker.run(["rm", "-f", first])
        XCTAssertEqual(try sh("data", "cat /data/one /data/two /data/greeting"), "one\ntwo\nhello\n")

        // History: the first version had neither "one" nor "two"; restored, a container sees it.
        let released = Date().addingTimeInterval(30)
        while (try volumes(store).first { $0["name"] as? String == "data" }?["holds"] as? [String]) != [] {
            guard Date() < released else { return XCTFail("the plugin never let go of the volume:\n\(plugin.logText)") }
            usleep(100_000)
        }
        let history = try runBlobctl(["--store", store, "volume", "history", "data", "--json"])
        let versions = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]], history.stderr)
        XCTAssertGreaterThanOrEqual(versions.count, 2)
        let restore = try runBlobctl(["--store", store, "volume", "restore", "data", "--version", "1"])
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertEqual(try sh("data", "ls /data"), "greeting\nsub\n")
        XCTAssertEqual(try sh("data", "cat /data/greeting"), "hello\n")

        // Bad input changes nothing.
        let option = try docker.docker(["volume", "create", "-d", d, "-o", "colour=blue", "other"])
        XCTAssertNotEqual(option.status, 0)
        XCTAssertTrue(option.stderr.contains("unknown volume option"), option.stderr)
        XCTAssertNotEqual(try docker.docker(["volume", "create", "-d", d, "bad/name"]).status, 0)
        XCTAssertEqual(try volumes(store).compactMap { $0["name"] as? String }, ["data"])

        // Removed: its bytes are freed by gc.
        let before = try runBlobctl(["--store", store, "df", "--json"])
        try docker.run(["volume", "rm", "data"])
        XCTAssertTrue(try volumes(store).isEmpty)
        let gc = try runBlobctl(["--store", store, "gc", "--json"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        func stored(_ r: CommandResult) throws -> Int {
            try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["storedBytes"] as? Int)
        }
        XCTAssertGreaterThan(try stored(before), 2_000_000)
        XCTAssertLessThan(try stored(try runBlobctl(["--store", store, "df", "--json"])), 100_000)
    }

    /// `docker volume create -o from=IMAGE:PATH` starts the volume with a directory of an
    /// image in the store (merged over its layers); a container sees it, and an unknown
    /// image is refused with nothing created.
    func testVolumeSeededFromAnImageOfTheStore() throws {
        let docker = try DockerEngine(self)
        try docker.importBusybox(as: "base:1")
        let store = try makeTemporaryDirectory(self) + "/store"
        let layout = try makeTemporaryDirectory(self)
        let layer = try ImageFixture.layer([("srv/data/greeting", Array("seeded\n".utf8)), ("srv/other", Array("x".utf8))])
        try ImageFixture(layers: [layer], label: "seed").writeLayout(layout, tag: "v1")
        let imported = try runBlobctl(["--store", store, "image", "import", layout, "--name", "app"])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let plugin = try PluginProcess(self, store: store)
        XCTAssertEqual(try docker.run(["volume", "create", "-d", plugin.driver, "-o", "from=app:v1:/srv/data", "seeded"]), "seeded\n")
        XCTAssertEqual(try docker.run(["run", "--rm", "--network", "none", "--volume-driver", plugin.driver, "-v", "seeded:/data", "base:1",
                                       "sh", "-c", "ls /data; cat /data/greeting"]), "greeting\nseeded\n")
        let missing = try docker.docker(["volume", "create", "-d", plugin.driver, "-o", "from=nosuch:v1", "other"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertEqual(try volumes(store).compactMap { $0["name"] as? String }, ["seeded"])
    }

    /// Anonymous volumes (`-v /data` with the driver): created for the container, removed
    /// with it by `--rm`, and their bytes freed by gc.
    func testAnonymousVolumesAreFreed() throws {
        let docker = try DockerEngine(self)
        try docker.importBusybox(as: "base:1")
        let store = try makeTemporaryDirectory(self) + "/store"
        let plugin = try PluginProcess(self, store: store)
        try docker.run(["run", "--rm", "--network", "none", "--volume-driver", plugin.driver, "-v", "/scratch", "base:1",
                        "sh", "-c", "head -c 3000000 /dev/urandom > /scratch/blob"])
        XCTAssertTrue(try volumes(store).isEmpty, "docker run --rm removed the anonymous volume")
        XCTAssertEqual(try runBlobctl(["--store", store, "gc"]).status, 0)
        let df = try runBlobctl(["--store", store, "df", "--json"])
        let stored = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any])?["storedBytes"] as? Int)
        XCTAssertLessThan(stored, 100_000, "its 3 MB were freed")
    }

    /// Podman uses the same plugin (`[engine.volume_plugins]` in containers.conf) and sees
    /// what Docker wrote into the volume, and Docker what podman wrote.
    func testPodmanSharesTheVolumesWithDocker() throws {
        let store = try makeTemporaryDirectory(self) + "/store"
        let plugin = try PluginProcess(self, store: store)
        let docker = try DockerEngine(self)
        try docker.importBusybox(as: "base:1")
        try docker.run(["volume", "create", "-d", plugin.driver, "shared"])
        try docker.run(["run", "--rm", "--network", "none", "-v", "shared:/data", "base:1", "sh", "-c", "echo from docker > /data/note"])
        let podman = try PodmanEngine(self, volumePlugins: [plugin.driver: plugin.socket])
        try podman.importBusybox(as: "localhost/base:1")
        // Podman keeps its own list of volumes: it adopts the existing one by creating it
        // with the driver (the plugin's Create is idempotent).
        try podman.run(["volume", "create", "--driver", plugin.driver, "shared"])
        XCTAssertTrue(try podman.run(["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]).contains("shared \(plugin.driver)"))
        XCTAssertEqual(try podman.run(["run", "--rm", "-v", "shared:/data", "localhost/base:1", "sh", "-c", "cat /data/note; echo from podman >> /data/note"]),
                       "from docker\n")
        XCTAssertEqual(try docker.run(["run", "--rm", "--network", "none", "-v", "shared:/data", "base:1", "cat", "/data/note"]),
                       "from docker\nfrom podman\n")
    }
}
