import BlobStore
import ContainerdProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The snapshotter's contract, called as containerd calls it (its gRPC API) on a running
/// `blobctl containerd-proxy`: errors, filters, labels, usage, and state that outlives the
/// proxy.
final class SnapshotServiceTests: XCTestCase {
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>

    final class ProxyProcess: @unchecked Sendable {
        let socket: String
        let log: String
        private let process = Process()

        init(_ test: XCTestCase, store: String) throws {
            socket = store + ".sock"
            log = store + ".log"
            if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
            let before = (try? String(contentsOfFile: log, encoding: .utf8))?.components(separatedBy: "listening").count ?? 1
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try handle.seekToEnd()
            process.executableURL = URL(fileURLWithPath: try blobctlPath())
            process.arguments = ["containerd-proxy", "--store", store, "--socket", socket]
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            try? handle.close()
            let deadline = Date().addingTimeInterval(20)
            while ((try? String(contentsOfFile: log, encoding: .utf8))?.components(separatedBy: "listening").count ?? 1) == before {
                guard process.isRunning, Date() < deadline else { throw RegistryTestError("blobctl containerd-proxy did not start") }
                usleep(20_000)
            }
            test.addTeardownBlock { [self] in stop() }
        }

        func stop() {
            guard process.isRunning else { return }
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
    }

    private func withProxy(store: String, _ body: (Snapshots) async throws -> Void) async throws {
        let proxy = try ProxyProcess(self, store: store)
        try await withGRPCClient(transport: .http2NIOPosix(target: .unixDomainSocket(path: proxy.socket), transportSecurity: .plaintext)) { client in
            try await body(Snapshots(wrapping: client))
        }
        proxy.stop()
    }

    private func code(_ call: () async throws -> Void) async -> RPCError.Code? {
        do { try await call(); return nil } catch let error as RPCError { return error.code } catch { return .unknown }
    }

    private func list(_ client: Snapshots, _ filters: [String] = []) async throws -> [String] {
        try await client.list(.with { $0.snapshotter = "blobstore"; $0.filters = filters }) { response in
            var names: [String] = []
            for try await message in response.messages { names += message.info.map(\.name) }
            return names.sorted()
        }
    }

    private func prepare(_ client: Snapshots, _ key: String, parent: String = "") async throws -> [Containerd_Types_Mount] {
        try await client.prepare(.with { $0.snapshotter = "blobstore"; $0.key = key; $0.parent = parent }).mounts
    }

    private func commit(_ client: Snapshots, _ name: String, key: String, labels: [String: String] = [:]) async throws {
        _ = try await client.commit(.with { $0.snapshotter = "blobstore"; $0.name = name; $0.key = key; $0.labels = labels })
    }

    func testSnapshotterContract() async throws {
        let store = try makeTemporaryDirectory(self) + "/store"
        let ref = "containerd.io/snapshot.ref"
        try await withProxy(store: store) { client in
            // No parent: a writable bind mount of an empty folder.
            let base = try await prepare(client, "ns/1/extract-base")
            XCTAssertEqual(base.map(\.type), ["bind"])
            XCTAssertEqual(base.first?.options, ["rbind", "rw"])
            let baseTree = try XCTUnwrap(base.first?.source)
            try Data(repeating: 7, count: 100_000).write(to: URL(fileURLWithPath: baseTree + "/file"))
            try await commit(client, "ns/2/L1", key: "ns/1/extract-base", labels: [ref: "L1"])

            // Over a parent: an overlay with the parent's tree below.
            let upper = try await prepare(client, "ns/3/extract-top", parent: "ns/2/L1")
            XCTAssertEqual(upper.map(\.type), ["overlay"])
            XCTAssertTrue(upper.first?.options.contains("lowerdir=" + baseTree) ?? false, "\(upper)")
            let again = await code { _ = try await self.prepare(client, "ns/3/extract-top", parent: "ns/2/L1") }
            XCTAssertEqual(again, .alreadyExists)
            let orphan = await code { _ = try await self.prepare(client, "ns/9/x", parent: "ns/8/missing") }
            XCTAssertEqual(orphan, .notFound)
            let overActive = await code { _ = try await self.prepare(client, "ns/9/x", parent: "ns/3/extract-top") }
            XCTAssertEqual(overActive, .failedPrecondition)
            let mountsOfCommitted = await code { _ = try await client.mounts(.with { $0.key = "ns/2/L1" }) }
            XCTAssertEqual(mountsOfCommitted, .failedPrecondition)
            try await commit(client, "ns/4/L2", key: "ns/3/extract-top", labels: [ref: "L2"])
            let twice = await code { try await self.commit(client, "ns/4/L2", key: "ns/2/L1") }
            XCTAssertEqual(twice, .failedPrecondition, "ns/2/L1 is not active")

            // A view of two layers: a read-only overlay of both trees.
            let view = try await client.view(.with { $0.key = "ns/5/view"; $0.parent = "ns/4/L2" }).mounts
            XCTAssertEqual(view.map(\.type), ["overlay"])
            XCTAssertFalse(view.first?.options.contains { $0.hasPrefix("upperdir=") } ?? true)
            let viewMounts = try await client.mounts(.with { $0.key = "ns/5/view" }).mounts
            XCTAssertEqual(viewMounts, view)

            // Filters, as containerd's unpacker asks for an existing layer.
            let found = try await list(client, ["labels.\"\(ref)\"==L2,parent==\"ns/2/L1\""])
            XCTAssertEqual(found, ["ns/4/L2"])
            let committed = try await list(client, ["kind==committed"])
            XCTAssertEqual(committed, ["ns/2/L1", "ns/4/L2"])
            let either = try await list(client, ["kind==view", "name~=^ns/2/"])
            XCTAssertEqual(either, ["ns/2/L1", "ns/5/view"])
            let all = try await list(client)
            XCTAssertEqual(all, ["ns/2/L1", "ns/4/L2", "ns/5/view"])
            let malformed = await code { _ = try await self.list(client, ["labels.\"unclosed==x"]) }
            XCTAssertEqual(malformed, .invalidArgument)

            // Labels change by path; kind and times in an update are ignored.
            let updated = try await client.update(.with {
                $0.info = .with { $0.name = "ns/4/L2"; $0.kind = .active; $0.labels = ["x": "y"] }
                $0.updateMask = .with { $0.paths = ["labels.x"] }
            }).info
            XCTAssertEqual(updated.labels, [ref: "L2", "x": "y"])
            XCTAssertEqual(updated.kind, .committed)

            let usage = try await client.usage(.with { $0.key = "ns/2/L1" })
            XCTAssertGreaterThanOrEqual(usage.size, 100_000)
            XCTAssertGreaterThanOrEqual(usage.inodes, 2)

            let withChild = await code { _ = try await client.remove(.with { $0.key = "ns/2/L1" }) }
            XCTAssertEqual(withChild, .failedPrecondition)
        }

        // Restarted, the proxy knows every snapshot (containerd remembers their names).
        try await withProxy(store: store) { client in
            let info = try await client.stat(.with { $0.key = "ns/4/L2" }).info
            XCTAssertEqual(info.parent, "ns/2/L1")
            XCTAssertEqual(info.labels["x"], "y")
            for key in ["ns/5/view", "ns/4/L2", "ns/2/L1"] { _ = try await client.remove(.with { $0.key = key }) }
            let none = try await list(client)
            XCTAssertEqual(none, [])
            let gone = await code { _ = try await client.stat(.with { $0.key = "ns/2/L1" }) }
            XCTAssertEqual(gone, .notFound)
        }
        let opened = try Store.open(at: store)
        XCTAssertEqual(try opened.claims(by: "containerd-snapshots"), [], "removed snapshots hold no layer")
        try opened.close()
    }
}
