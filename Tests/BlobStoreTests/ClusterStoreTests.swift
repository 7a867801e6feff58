import BlobStore
import Foundation
import XCTest

/// Cluster mode through the real `blobctl`: nodes with their own folders over one
/// PostgreSQL index (a real server) and one packs folder, as users run them.
final class ClusterStoreTests: XCTestCase {
    private struct Cluster {
        let server: PostgresServer
        let directory: String
        /// One config file per node.
        let configs: [String]
    }

    private func makeCluster(nodes: Int) throws -> Cluster {
        let server = try PostgresServer(self)
        let directory = try makeTemporaryDirectory(self)
        let schema = "c_" + UUID().uuidString.prefix(8).lowercased().replacingOccurrences(of: "-", with: "")
        var configs: [String] = []
        for n in 0..<nodes {
            let path = directory + "/node\(n).json"
            try server.writeClusterConfig(at: path, schema: schema, packs: directory + "/packs", node: directory + "/node\(n)")
            configs.append(path)
        }
        let created = try runBlobctl(["init", "--cluster", configs[0], "--json"])
        XCTAssertEqual(created.status, 0, created.stderr)
        return Cluster(server: server, directory: directory, configs: configs)
    }

    @discardableResult
    private func blobctl(_ config: String, _ args: [String], expect status: Int32 = 0, input: [UInt8]? = nil,
                         file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let r = try runBlobctl(["--store", config] + args, input: input)
        XCTAssertEqual(r.status, status, "blobctl \(args.joined(separator: " ")): \(r.stdout) \(r.stderr)", file: file, line: line)
        return r
    }

    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func testNodesShareBlobsDedupAndCollectGarbage() throws {
        let cluster = try makeCluster(nodes: 2)
        let (a, b) = (cluster.configs[0], cluster.configs[1])
        var random = TestRandom(seed: 14_001)
        let shared = random.bytes(600_000)
        let first = shared + random.bytes(200_000)
        let second = shared + random.bytes(200_000)
        let path = cluster.directory + "/first"
        FileManager.default.createFile(atPath: path, contents: Data(first))

        let digest = try blobctl(a, ["put", path]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(digest, first.sha256.description)
        _ = try blobctl(b, ["get", digest, "-o", cluster.directory + "/back"])
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: cluster.directory + "/back"))), first, "node b reads what node a wrote")

        // A second blob sharing 600 kB through the other node stores only what is new.
        let before = try json(try blobctl(a, ["df", "--json"]).stdout)
        let secondDigest = try blobctl(b, ["put", "-"], input: second).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let after = try json(try blobctl(a, ["df", "--json"]).stdout)
        let added = (after["storedBytes"] as? Int ?? 0) - (before["storedBytes"] as? Int ?? 0)
        XCTAssertGreaterThan(added, 150_000)
        XCTAssertLessThan(added, 320_000, "the shared 600 kB were not stored again")
        XCTAssertEqual(after["blobs"] as? Int, 2)

        // Removed on one node, collected by the other; the survivor reads back whole.
        _ = try blobctl(a, ["rm", digest])
        let report = try json(try blobctl(b, ["gc", "--json"]).stdout)
        XCTAssertGreaterThanOrEqual(report["chunksFreed"] as? Int ?? 0, 2, "the 200 kB only the removed blob held")
        _ = try blobctl(a, ["stat", digest], expect: 3)
        _ = try blobctl(a, ["get", secondDigest, "-o", cluster.directory + "/back2"])
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: cluster.directory + "/back2"))), second)
        XCTAssertTrue(try blobctl(b, ["fsck"]).stdout.contains("healthy"))

        // One store per schema: a second init is refused; a node whose database is down exits 75.
        _ = try blobctl(a, ["init", "--cluster", a], expect: 1)
        cluster.server.stop()
        let down = try blobctl(a, ["stat", secondDigest], expect: 75)
        XCTAssertTrue(down.stderr.contains("index"), down.stderr)
    }

    func testRegistryNodesServeEachOthersPushesAndSurviveAnIndexRestart() throws {
        let cluster = try makeCluster(nodes: 2)
        let nodeA = try RegistryProcess(self, storePath: cluster.configs[0])
        let nodeB = try RegistryProcess(self, storePath: cluster.configs[1])
        let image = try registryImage(seed: 14_002, layerCount: 3)
        try nodeA.pushImage("team/app", tag: "v1", image)

        let manifest = try nodeB.request("GET", "/v2/team/app/manifests/v1", headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"])
        XCTAssertEqual(manifest.status, 200)
        XCTAssertEqual(manifest.body, image.manifest)
        for layer in image.layers {
            let r = try nodeB.request("GET", "/v2/team/app/blobs/\(layer.sha256)")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.body, layer, "byte-exact through the other node")
        }

        // The index goes away: requests fail cleanly with 503 and a Retry-After …
        cluster.server.stop()
        let during = try nodeB.request("GET", "/v2/team/app/blobs/\(image.layers[0].sha256)")
        XCTAssertEqual(during.status, 503, during.text)
        XCTAssertNotNil(during.header("Retry-After"))
        // … and work again once it is back, with no restart of the nodes.
        try cluster.server.start()
        let back = try nodeA.request("GET", "/v2/team/app/blobs/\(image.layers[1].sha256)")
        XCTAssertEqual(back.status, 200, back.text)
        XCTAssertEqual(back.body, image.layers[1])
        try nodeB.pushImage("team/app", tag: "v2", try registryImage(seed: 14_003))
        XCTAssertEqual(try nodeA.request("HEAD", "/v2/team/app/manifests/v2").status, 200)
    }

    /// PostgreSQL crashes and comes back while four clients push and pull through two nodes:
    /// every answer is a success or a 503 (never a 500, a reset or a hang: each is answered
    /// within 75 s, more than the longest deadline the index sets, the writer lock's 60 s — a
    /// lock wait sent on a connection the crash killed silently ends only then), the outage is
    /// seen, and requests succeed again with no restart of the nodes; every push that got
    /// its 201 pulls back byte-exact through the other node, and `fsck` is healthy.
    func testAnIndexCrashUnderLoadFailsCleanlyAndRecoversByItself() throws {
        let cluster = try makeCluster(nodes: 2)
        let nodes = try cluster.configs.map { try RegistryProcess(self, storePath: $0) }
        let base = try registryImage(seed: 14_040, layerCount: 1, layerBytes: 300_000)
        try nodes[0].pushImage("team/base", tag: "v1", base)

        struct Outcome { var at: Double /* when the request was sent */; var status: Int; var pushed: [UInt8]?; var repository: String; var node: Int }
        final class Outcomes: @unchecked Sendable {
            let lock = NSLock()
            var all: [Outcome] = []
            func add(_ o: [Outcome]) { lock.lock(); all += o; lock.unlock() }
        }
        let record = Outcomes()
        let started = Date()
        let failures = LockedList()
        /// The response, or nil (counted as no answer) with why kept for the failure message.
        @Sendable func attempt(_ node: RegistryProcess, _ what: String, _ body: (RegistryProcess) throws -> HTTPResult) -> HTTPResult? {
            do { return try body(node) } catch {
                failures.append("\(what) at \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(error)")
                return nil
            }
        }
        let loadSeconds = 14.0
        // Threads of their own (concurrentPerform would run only as many as there are cores).
        let done = DispatchGroup()
        func spawn(_ work: @escaping @Sendable () -> Void) {
            done.enter()
            Thread { work(); done.leave() }.start()
        }
        spawn {
            // The index crashes 3 s in and is back 3 s later.
            Thread.sleep(forTimeInterval: 3)
            cluster.server.stop(mode: "immediate")
            Thread.sleep(forTimeInterval: 3)
            try? cluster.server.start()
        }
        for worker in 0..<4 {
            spawn {
                var random = TestRandom(seed: 14_041 + UInt64(worker))
                var i = 0
                while Date().timeIntervalSince(started) < loadSeconds {
                    let n = (worker + i) % 2
                    let began = Date().timeIntervalSince(started)
                    let blob = random.bytes(40_000 + i)
                    let push = attempt(nodes[n], "push") { try $0.request("POST", "/v2/team/load\(worker)/blobs/uploads/?digest=\(blob.sha256)",
                                                     headers: ["Content-Type": "application/octet-stream"], body: blob, timeout: 75) }
                    let pull = attempt(nodes[1 - n], "pull") { try $0.request("GET", "/v2/team/base/blobs/\(base.layers[0].sha256)", timeout: 75) }
                    let at = began
                    for (what, r) in [("push", push), ("pull", pull)] where r != nil && ![200, 201, 503].contains(r!.status) {
                        failures.append("\(what) at \(String(format: "%.1f", at)) s: \(r!.status) \(r!.text.prefix(300))")
                    }
                    record.add([
                        Outcome(at: at, status: push?.status ?? -1, pushed: push?.status == 201 ? blob : nil, repository: "team/load\(worker)", node: n),
                        Outcome(at: at, status: pull.map { $0.status == 200 && $0.body != base.layers[0] ? -2 : $0.status } ?? -1,
                                pushed: nil, repository: "team/base", node: 1 - n),
                    ])
                    i += 1
                }
            }
        }
        done.wait()
        let outcomes = record.all
        let statuses = Dictionary(grouping: outcomes, by: \.status).mapValues(\.count)
        print("index crash under load: \(outcomes.count) requests, by status \(statuses.sorted { $0.key < $1.key })")
        XCTAssertEqual(Set(statuses.keys).subtracting([200, 201, 503]), [], "only successes and 503s (-1: no answer, -2: wrong bytes): \(failures.items)")
        XCTAssertGreaterThan(statuses[503] ?? 0, 0, "the outage was seen")
        // Recovered by itself: what is sent from 4 s after the restart succeeds.
        let late = outcomes.filter { $0.at > 10 }
        XCTAssertGreaterThan(late.count, 8)
        XCTAssertEqual(late.filter { $0.status >= 300 }.count, 0, "requests after recovery: \(failures.items)")
        for outcome in outcomes {
            guard let blob = outcome.pushed else { continue }
            XCTAssertEqual(try nodes[1 - outcome.node].request("GET", "/v2/\(outcome.repository)/blobs/\(blob.sha256)").body, blob)
        }
        XCTAssertTrue(try blobctl(cluster.configs[0], ["fsck"]).stdout.contains("healthy"))
    }

    /// Three registry nodes over one cluster take concurrent pushes of images that share a
    /// base layer while a collector runs on one of them: every image pulls back whole
    /// through another node, the base is stored once, and `fsck` finds the store healthy.
    func testThreeNodesTakeConcurrentPushesWhileOneCollects() throws {
        let cluster = try makeCluster(nodes: 3)
        let nodes = try cluster.configs.map { try RegistryProcess(self, storePath: $0) }
        var random = TestRandom(seed: 14_010)
        let base = try ImageFixture.layer([("base", random.bytes(800_000))])
        let images = try (0..<12).map { i in
            ImageFixture(layers: [base, try ImageFixture.layer([("app\(i)", random.bytes(50_000 + i))])], label: "app-\(i)")
        }
        let (failures, collections) = try pushConcurrentlyWhileCollecting(images, to: nodes, gcStore: cluster.configs[2])
        XCTAssertEqual(failures, [])
        XCTAssertGreaterThan(collections, 0)
        _ = try blobctl(cluster.configs[1], ["gc"])

        for (i, image) in images.enumerated() {
            let node = nodes[(i + 1) % 3]
            let manifest = try node.request("GET", "/v2/team/app\(i)/manifests/v1", headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"])
            XCTAssertEqual(manifest.status, 200, "app\(i)")
            XCTAssertEqual(manifest.body, image.manifest)
            for blob in [image.config] + image.layers {
                let r = try node.request("GET", "/v2/team/app\(i)/blobs/\(blob.sha256)")
                XCTAssertEqual(r.body, blob, "app\(i) \(blob.sha256) through node \((i + 1) % 3)")
            }
        }
        let usage = try json(try blobctl(cluster.configs[0], ["df", "--json"]).stdout)
        let unique = Set(images.flatMap(\.blobs)).reduce(0) { $0 + $1.count }
        XCTAssertEqual(usage["logicalBytes"] as? Int, unique, "every blob once")
        XCTAssertLessThan(usage["storedBytes"] as? Int ?? .max, unique + unique / 20, "the base layer is stored once")
        XCTAssertTrue(try blobctl(cluster.configs[0], ["fsck"]).stdout.contains("healthy"))
    }
}
