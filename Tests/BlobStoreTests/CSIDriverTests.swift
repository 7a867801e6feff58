import BlobStore
import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `blobctl csi` driven over its socket by a gRPC client, as an orchestrator would: every
/// service, idempotent repeats, the spec's error codes, and real bind mounts.
final class CSIDriverTests: XCTestCase {
    /// A `blobctl csi` process on a socket of its own.
    final class DriverProcess: @unchecked Sendable {
        let socket: String
        let store: String
        let log: String
        private let process = Process()

        init(_ test: XCTestCase, store: String) throws {
            self.store = store
            socket = store + ".csi.sock"
            log = store + ".csi.log"
            FileManager.default.createFile(atPath: log, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.executableURL = URL(fileURLWithPath: try blobctlPath())
            process.arguments = ["csi", "--store", store, "--endpoint", "unix://" + socket, "--node-id", "node-1"]
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            try? handle.close()
            let deadline = Date().addingTimeInterval(20)
            while !logText.contains("csi driver listening") {
                guard process.isRunning, Date() < deadline else { throw RegistryTestError("blobctl csi did not start:\n\(logText)") }
                usleep(20_000)
            }
            test.addTeardownBlock { [self] in
                if process.isRunning { kill(process.processIdentifier, SIGTERM); process.waitUntilExit() }
            }
        }

        var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        func stop() -> Int32 {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    struct Clients {
        let identity: Csi_V1_Identity.Client<HTTP2ClientTransport.Posix>
        let controller: Csi_V1_Controller.Client<HTTP2ClientTransport.Posix>
        let node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>
    }

    /// A directory for publication targets; whatever a failed test left mounted in it is
    /// unmounted at teardown (registered after the directory's own removal, so it runs first).
    private func mountDirectory() throws -> String {
        let base = try makeTemporaryDirectory(self)
        addTeardownBlock {
            guard let table = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
            let points = table.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                return fields.count > 4 && fields[4].hasPrefix(base) ? String(fields[4]) : nil
            }
            for point in points.sorted().reversed() { umount2(point, Int32(MNT_DETACH)) }
        }
        return base
    }

    private func withDriver(_ body: (Clients, DriverProcess) async throws -> Void) async throws {
        let store = try makeTemporaryDirectory(self) + "/store"
        let driver = try DriverProcess(self, store: store)
        try await withGRPCClient(transport: .http2NIOPosix(target: .unixDomainSocket(path: driver.socket), transportSecurity: .plaintext)) { client in
            try await body(Clients(identity: .init(wrapping: client), controller: .init(wrapping: client), node: .init(wrapping: client)), driver)
        }
        XCTAssertEqual(driver.stop(), 0, driver.logText)
        XCTAssertFalse(FileManager.default.fileExists(atPath: driver.socket), "the socket is removed on SIGTERM")
    }

    /// The status code a call fails with, or nil when it succeeds.
    private func code(_ call: () async throws -> Void) async -> RPCError.Code? {
        do { try await call(); return nil } catch let error as RPCError { return error.code } catch { return .unknown }
    }

    private static let mount = Csi_V1_VolumeCapability.with {
        $0.mount = .init()
        $0.accessMode = .with { $0.mode = .singleNodeWriter }
    }

    private func create(_ c: Clients, _ name: String, required: Int64 = 1 << 30,
                        source: Csi_V1_VolumeContentSource? = nil) async throws -> Csi_V1_Volume {
        try await c.controller.createVolume(.with {
            $0.name = name
            $0.capacityRange = .with { $0.requiredBytes = required }
            $0.volumeCapabilities = [Self.mount]
            if let source { $0.volumeContentSource = source }
        }).volume
    }

    func testIdentityAndCapabilities() async throws {
        try await withDriver { c, _ in
            let info = try await c.identity.getPluginInfo(.init())
            XCTAssertEqual(info.name, "blobstore.csi.blobstore.dev")
            XCTAssertFalse(info.vendorVersion.isEmpty)
            let ready = try await c.identity.probe(.init()).ready.value
            XCTAssertEqual(ready, true)
            let plugin = try await c.identity.getPluginCapabilities(.init()).capabilities
            XCTAssertTrue(plugin.contains { $0.service.type == .controllerService })
            let controller = Set(try await c.controller.controllerGetCapabilities(.init()).capabilities.map(\.rpc.type))
            XCTAssertEqual(controller, [.createDeleteVolume, .listVolumes, .getCapacity, .createDeleteSnapshot, .listSnapshots, .cloneVolume, .expandVolume])
            let nodeInfo = try await c.node.nodeGetInfo(.init()).nodeID
            XCTAssertEqual(nodeInfo, "node-1")
            let nodeCapabilities = try await c.node.nodeGetCapabilities(.init()).capabilities.map(\.rpc.type)
            XCTAssertEqual(nodeCapabilities, [.getVolumeStats])
        }
    }

    /// Create, repeat, clash, list with paging, validate, expand, delete, and each error code
    /// the controller's calls can answer.
    func testVolumesAreIdempotentAndErrorsFollowTheSpec() async throws {
        try await withDriver { c, driver in
            let volume = try await create(c, "pvc-a", required: 5 << 30)
            XCTAssertEqual(volume.volumeID, "pvc-a")
            XCTAssertEqual(volume.capacityBytes, 5 << 30)
            let repeated = try await create(c, "pvc-a", required: 5 << 30)
            XCTAssertEqual(repeated, volume, "a repeat answers the same")
            let clash = await code { _ = try await self.create(c, "pvc-a", required: 6 << 30) }
            XCTAssertEqual(clash, .alreadyExists)
            let noName = await code { _ = try await c.controller.createVolume(.with { $0.volumeCapabilities = [Self.mount] }) }
            XCTAssertEqual(noName, .invalidArgument)
            let noCapability = await code { _ = try await c.controller.createVolume(.with { $0.name = "pvc-b" }) }
            XCTAssertEqual(noCapability, .invalidArgument)
            let block = await code {
                _ = try await c.controller.createVolume(.with {
                    $0.name = "pvc-b"
                    $0.volumeCapabilities = [.with { $0.block = .init(); $0.accessMode = .with { $0.mode = .singleNodeWriter } }]
                })
            }
            XCTAssertEqual(block, .invalidArgument)
            let range = await code {
                _ = try await c.controller.createVolume(.with {
                    $0.name = "pvc-b"
                    $0.volumeCapabilities = [Self.mount]
                    $0.capacityRange = .with { $0.requiredBytes = 10; $0.limitBytes = 5 }
                })
            }
            XCTAssertEqual(range, .outOfRange)
            let badName = await code { _ = try await self.create(c, "../etc") }
            XCTAssertEqual(badName, .invalidArgument)
            let noSource = await code {
                _ = try await self.create(c, "pvc-b", source: .with { $0.snapshot = .with { $0.snapshotID = "nosuch" } })
            }
            XCTAssertEqual(noSource, .notFound)
            let ls = try runBlobctl(["--store", driver.store, "volume", "ls", "--json"])
            XCTAssertFalse(ls.stdout.contains("pvc-b"), "nothing was created by the failed calls")

            for name in ["pvc-c", "pvc-d", "pvc-e", "pvc-f"] { _ = try await create(c, name) }
            var seen: [String] = []
            var token = ""
            repeat {
                let page = try await c.controller.listVolumes(.with { $0.maxEntries = 2; $0.startingToken = token })
                XCTAssertLessThanOrEqual(page.entries.count, 2)
                seen += page.entries.map(\.volume.volumeID)
                token = page.nextToken
            } while !token.isEmpty
            XCTAssertEqual(seen, ["pvc-a", "pvc-c", "pvc-d", "pvc-e", "pvc-f"])
            let badToken = await code { _ = try await c.controller.listVolumes(.with { $0.startingToken = "garbage" }) }
            XCTAssertEqual(badToken, .aborted)

            let valid = try await c.controller.validateVolumeCapabilities(.with { $0.volumeID = "pvc-a"; $0.volumeCapabilities = [Self.mount] })
            XCTAssertEqual(valid.confirmed.volumeCapabilities, [Self.mount])
            let missing = await code {
                _ = try await c.controller.validateVolumeCapabilities(.with { $0.volumeID = "nosuch"; $0.volumeCapabilities = [Self.mount] })
            }
            XCTAssertEqual(missing, .notFound)
            let capacity = try await c.controller.getCapacity(.init()).availableCapacity
            XCTAssertGreaterThan(capacity, 0)
            let expanded = try await c.controller.controllerExpandVolume(.with {
                $0.volumeID = "pvc-a"
                $0.capacityRange = .with { $0.requiredBytes = 8 << 30 }
            })
            XCTAssertEqual(expanded.capacityBytes, 8 << 30)

            _ = try await c.controller.deleteVolume(.with { $0.volumeID = "pvc-a" })
            _ = try await c.controller.deleteVolume(.with { $0.volumeID = "pvc-a" }) // a repeat succeeds
            let noID = await code { _ = try await c.controller.deleteVolume(.init()) }
            XCTAssertEqual(noID, .invalidArgument)
            XCTAssertFalse(try runBlobctl(["--store", driver.store, "volume", "ls"]).stdout.contains("pvc-a"))
            XCTAssertFalse(driver.logText.contains("secret-value"))
        }
    }

    /// Publish is a real bind mount; what a pod writes is there after unpublish and
    /// re-publish; read-only publish refuses writes; a snapshot and a clone cost no bytes
    /// and hold the content; a published volume is not deleted; gc frees what deleted
    /// volumes and snapshots held.
    func testPublishSnapshotCloneAndDelete() async throws {
        try await withDriver { c, driver in
            _ = try await create(c, "data")
            let base = try mountDirectory()
            let target = base + "/pods/one/mount"
            func publish(_ volume: String, _ path: String, readOnly: Bool = false) async throws {
                _ = try await c.node.nodePublishVolume(.with {
                    $0.volumeID = volume
                    $0.targetPath = path
                    $0.volumeCapability = Self.mount
                    $0.readonly = readOnly
                    $0.secrets = ["token": "secret-value"]
                })
            }
            func unpublish(_ volume: String, _ path: String) async throws {
                _ = try await c.node.nodeUnpublishVolume(.with { $0.volumeID = volume; $0.targetPath = path })
            }
            try await publish("data", target)
            try await publish("data", target) // a repeat succeeds
            var random = TestRandom(seed: 7100)
            let payload = random.bytes(3 << 20)
            try Data(payload).write(to: URL(fileURLWithPath: target + "/payload"))
            let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            XCTAssertTrue(mounts.contains(" \(target) "), "a real mount at the target")
            let stats = try await c.node.nodeGetVolumeStats(.with { $0.volumeID = "data"; $0.volumePath = target })
            let bytes = try XCTUnwrap(stats.usage.first { $0.unit == .bytes })
            XCTAssertGreaterThanOrEqual(bytes.used, Int64(payload.count))
            XCTAssertEqual(bytes.total, 1 << 30)
            XCTAssertNotNil(stats.usage.first { $0.unit == .inodes })
            let busy = await code { _ = try await c.controller.deleteVolume(.with { $0.volumeID = "data" }) }
            XCTAssertEqual(busy, .failedPrecondition)

            // A snapshot of a volume in use holds what its files hold now.
            let snapshot = try await c.controller.createSnapshot(.with { $0.sourceVolumeID = "data"; $0.name = "snap-1" }).snapshot
            XCTAssertTrue(snapshot.readyToUse)
            XCTAssertEqual(snapshot.sourceVolumeID, "data")
            XCTAssertGreaterThan(snapshot.sizeBytes, Int64(payload.count))
            let repeatedSnapshot = try await c.controller.createSnapshot(.with { $0.sourceVolumeID = "data"; $0.name = "snap-1" }).snapshot.snapshotID
            XCTAssertEqual(repeatedSnapshot, "snap-1")
            _ = try await create(c, "other")
            let clash = await code { _ = try await c.controller.createSnapshot(.with { $0.sourceVolumeID = "other"; $0.name = "snap-1" }) }
            XCTAssertEqual(clash, .alreadyExists)

            try Data("after the snapshot".utf8).write(to: URL(fileURLWithPath: target + "/later"))
            try await unpublish("data", target)
            try await unpublish("data", target) // a repeat succeeds
            XCTAssertFalse(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).contains(" \(target) "))

            // Published again elsewhere: both files; read-only refuses writes.
            let again = base + "/pods/two/mount"
            try await publish("data", again, readOnly: true)
            XCTAssertEqual(FileManager.default.contents(atPath: again + "/payload"), Data(payload))
            XCTAssertEqual(FileManager.default.contents(atPath: again + "/later"), Data("after the snapshot".utf8))
            XCTAssertFalse(FileManager.default.createFile(atPath: again + "/nope", contents: Data()), "read-only")
            try await unpublish("data", again)

            // From the snapshot, and a clone: no new bytes, the right content.
            func stored() throws -> Int {
                let df = try runBlobctl(["--store", driver.store, "df", "--json"])
                return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any])?["storedBytes"] as? Int)
            }
            let before = try stored()
            _ = try await create(c, "restored", source: .with { $0.snapshot = .with { $0.snapshotID = "snap-1" } })
            _ = try await create(c, "clone", source: .with { $0.volume = .with { $0.volumeID = "data" } })
            XCTAssertEqual(try stored(), before, "a clone and a volume from a snapshot store nothing new")
            let restoredPath = base + "/pods/three/mount"
            try await publish("restored", restoredPath)
            XCTAssertEqual(FileManager.default.contents(atPath: restoredPath + "/payload"), Data(payload))
            XCTAssertFalse(FileManager.default.fileExists(atPath: restoredPath + "/later"), "written after the snapshot")
            try await unpublish("restored", restoredPath)

            let listed = try await c.controller.listSnapshots(.with { $0.sourceVolumeID = "data" }).entries.map(\.snapshot.snapshotID)
            XCTAssertEqual(listed, ["snap-1"])
            let unknownSnapshot = try await c.controller.listSnapshots(.with { $0.snapshotID = "nosuch" }).entries.count
            XCTAssertEqual(unknownSnapshot, 0)

            for v in ["data", "restored", "clone", "other"] { _ = try await c.controller.deleteVolume(.with { $0.volumeID = v }) }
            _ = try await c.controller.deleteSnapshot(.with { $0.snapshotID = "snap-1" })
            _ = try await c.controller.deleteSnapshot(.with { $0.snapshotID = "snap-1" })
            XCTAssertEqual(try runBlobctl(["--store", driver.store, "gc"]).status, 0)
            XCTAssertLessThan(try stored(), 100_000, "every byte freed")
            XCTAssertFalse(driver.logText.contains("secret-value"), "secrets are never logged")
        }
    }

    /// Stopped and started again between calls, the driver loses nothing: volumes with
    /// their capacity, snapshots with their source, the data. Then no cliff: 1,000 snapshots
    /// of one volume (deleting one frees exactly the bytes only it held) and a chain of 50
    /// clones whose last one reads the original bytes, for no new stored bytes.
    func testRestartLosesNothingAndSnapshotsAndClonesHaveNoCliff() async throws {
        let store = try makeTemporaryDirectory(self) + "/store"
        let target = try mountDirectory() + "/mount"
        func connect(_ body: (Clients) async throws -> Void) async throws {
            let driver = try DriverProcess(self, store: store)
            try await withGRPCClient(transport: .http2NIOPosix(target: .unixDomainSocket(path: driver.socket), transportSecurity: .plaintext)) { client in
                try await body(Clients(identity: .init(wrapping: client), controller: .init(wrapping: client), node: .init(wrapping: client)))
            }
            XCTAssertEqual(driver.stop(), 0, driver.logText)
        }
        func publish(_ c: Clients, _ volume: String) async throws {
            _ = try await c.node.nodePublishVolume(.with { $0.volumeID = volume; $0.targetPath = target; $0.volumeCapability = Self.mount })
        }
        func unpublish(_ c: Clients, _ volume: String) async throws {
            _ = try await c.node.nodeUnpublishVolume(.with { $0.volumeID = volume; $0.targetPath = target })
        }
        func stored() throws -> (bytes: Int, blobs: Int) {
            let df = try runBlobctl(["--store", store, "df", "--json"])
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any])
            return (try XCTUnwrap(json["storedBytes"] as? Int), try XCTUnwrap(json["blobs"] as? Int))
        }
        var random = TestRandom(seed: 7200)
        let payload = random.bytes(1 << 20)
        try await connect { c in
            _ = try await create(c, "v", required: 2 << 30)
            try await publish(c, "v")
            try Data(payload).write(to: URL(fileURLWithPath: target + "/payload"))
            try await unpublish(c, "v")
            _ = try await c.controller.createSnapshot(.with { $0.sourceVolumeID = "v"; $0.name = "before-restart" })
        }
        try await connect { c in
            let volumes = try await c.controller.listVolumes(.init()).entries.map(\.volume)
            XCTAssertEqual(volumes.map(\.volumeID), ["v"])
            XCTAssertEqual(volumes.first?.capacityBytes, 2 << 30)
            let snapshots = try await c.controller.listSnapshots(.init()).entries.map(\.snapshot)
            XCTAssertEqual(snapshots.map(\.snapshotID), ["before-restart"])
            XCTAssertEqual(snapshots.first?.sourceVolumeID, "v")
            try await publish(c, "v")
            XCTAssertEqual(FileManager.default.contents(atPath: target + "/payload"), Data(payload))

            // 1,000 snapshots, each of a different small change (a counter file).
            var started = Date()
            for i in 0..<1000 {
                try Data("\(i)".utf8).write(to: URL(fileURLWithPath: target + "/counter"))
                _ = try await c.controller.createSnapshot(.with { $0.sourceVolumeID = "v"; $0.name = "s\(i)" })
            }
            print("1000 snapshots of a published volume: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            try await unpublish(c, "v")
            var all: [String] = []
            var token = ""
            repeat {
                let page = try await c.controller.listSnapshots(.with { $0.sourceVolumeID = "v"; $0.maxEntries = 300; $0.startingToken = token })
                all += page.entries.map(\.snapshot.snapshotID)
                token = page.nextToken
            } while !token.isEmpty
            XCTAssertEqual(all.count, 1001)

            // Deleting one frees its own blob, and only that.
            XCTAssertEqual(try runBlobctl(["--store", store, "gc"]).status, 0)
            let before = try stored()
            started = Date()
            _ = try await c.controller.deleteSnapshot(.with { $0.snapshotID = "s500" })
            print("deleting 1 of 1001 snapshots: \(String(format: "%.3f", Date().timeIntervalSince(started))) s")
            let gc = try runBlobctl(["--store", store, "gc", "--json"])
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(gc.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["blobsFreed"] as? Int, 1, gc.stdout)
            XCTAssertEqual(try stored().blobs, before.blobs - 1)
            _ = try await create(c, "from-s499", source: .with { $0.snapshot = .with { $0.snapshotID = "s499" } })
            try await publish(c, "from-s499")
            XCTAssertEqual(try String(contentsOfFile: target + "/counter", encoding: .utf8), "499")
            try await unpublish(c, "from-s499")

            // A chain of 50 clones: no new bytes, the last one reads the original.
            let chainStart = try stored().bytes
            started = Date()
            var source = "v"
            for i in 1...50 {
                _ = try await create(c, "clone-\(i)", source: .with { $0.volume = .with { $0.volumeID = source } })
                source = "clone-\(i)"
            }
            print("a chain of 50 clones: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
            XCTAssertEqual(try stored().bytes, chainStart, "clones store nothing")
            try await publish(c, "clone-50")
            XCTAssertEqual(FileManager.default.contents(atPath: target + "/payload"), Data(payload))
            XCTAssertEqual(try String(contentsOfFile: target + "/counter", encoding: .utf8), "999")
            try await unpublish(c, "clone-50")
        }
    }

    /// A call on a volume while another one works on it is ABORTED (the orchestrator
    /// retries): here an expansion while a snapshot archives the volume's 128 MiB.
    func testConcurrentOperationsOnOneVolumeAreAborted() async throws {
        try await withDriver { c, _ in
            _ = try await create(c, "busy")
            let target = try mountDirectory() + "/mount"
            _ = try await c.node.nodePublishVolume(.with { $0.volumeID = "busy"; $0.targetPath = target; $0.volumeCapability = Self.mount })
            var random = TestRandom(seed: 7300)
            FileManager.default.createFile(atPath: target + "/big", contents: nil)
            let handle = try XCTUnwrap(FileHandle(forWritingAtPath: target + "/big"))
            for _ in 0..<128 { handle.write(Data(random.bytes(1 << 20))) }
            try handle.close()
            let controller = c.controller
            async let snapshot = controller.createSnapshot(.with { $0.sourceVolumeID = "busy"; $0.name = "while-busy" })
            try await Task.sleep(for: .milliseconds(30))
            let expand = await code {
                _ = try await controller.controllerExpandVolume(.with { $0.volumeID = "busy"; $0.capacityRange = .with { $0.requiredBytes = 1 << 40 } })
            }
            XCTAssertEqual(expand, .aborted, "the snapshot was still archiving the volume")
            let made = try await snapshot
            XCTAssertTrue(made.snapshot.readyToUse)
            _ = try await c.node.nodeUnpublishVolume(.with { $0.volumeID = "busy"; $0.targetPath = target })
        }
    }
}
