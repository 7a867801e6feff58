import BlobStore
import Foundation
import ObjectStorage
import XCTest

/// Cluster mode as the issue describes it: `blobctl serve` nodes over a real PostgreSQL
/// index and pack objects in a real Ceph (radosgw), each node with its own folder.
final class ClusterObjectStorageTests: XCTestCase {
    nonisolated(unsafe) private static var ceph: Result<CephCluster, Error>?

    override class func setUp() {
        super.setUp()
        ceph = Result { try CephCluster.start() }
    }

    override class func tearDown() {
        if case .success(let c)? = ceph { c.stop() }
        ceph = nil
        super.tearDown()
    }

    struct Cluster {
        let postgres: PostgresServer
        let ceph: CephCluster
        let bucket: String
        let directory: String
        let configs: [String]
        var client: S3Client { get throws { try ceph.client(bucket: bucket) } }
    }

    /// Writes one config per node over a new schema and bucket; runs `init --cluster` unless
    /// `initialize` is false (`blobctl migrate` creates the store itself).
    func makeCluster(nodes: Int, initialize: Bool = true, maxConnections: Int = 24) throws -> Cluster {
        let ceph: CephCluster
        do { ceph = try XCTUnwrap(Self.ceph).get() } catch {
            XCTFail("\(error)") // CI installs Ceph: its absence is a broken setup, not a skip
            throw error
        }
        let postgres = try PostgresServer(self)
        let directory = try makeTemporaryDirectory(self)
        let bucket = "cluster-" + UUID().uuidString.prefix(8).lowercased()
        let schema = "s_" + UUID().uuidString.prefix(8).lowercased().replacingOccurrences(of: "-", with: "")
        var configs: [String] = []
        for n in 0..<nodes {
            let config: [String: Any] = [
                "index": ["url": postgres.url, "schema": schema, "maxConnections": maxConnections] as [String: Any],
                "packs": ["s3": ["endpoint": ceph.endpoint, "bucket": bucket, "accessKey": CephCluster.accessKey,
                                 "secretKey": CephCluster.secretKey, "region": CephCluster.region, "cacheMiB": 64]],
                "node": ["directory": directory + "/node\(n)"],
            ]
            let path = directory + "/node\(n).json"
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path))
            configs.append(path)
        }
        if initialize {
            let created = try runBlobctl(["init", "--cluster", configs[0]])
            XCTAssertEqual(created.status, 0, created.stderr)
        }
        return Cluster(postgres: postgres, ceph: ceph, bucket: bucket, directory: directory, configs: configs)
    }

    func bucketBytes(_ cluster: Cluster) throws -> Int {
        try cluster.client.list(prefix: "packs/").reduce(0) { $0 + $1.size }
    }

    /// Three nodes on Ceph: concurrent pushes of images sharing a base layer through all
    /// three while `gc` runs on one; every image pulls back through another node, the base
    /// is stored once, fsck is healthy; a deleted image's bytes leave the bucket at the next
    /// collection.
    func testThreeNodesOnCephShareImagesAndFreeADeletedImagesBytes() throws {
        let cluster = try makeCluster(nodes: 3)
        // Default settings: pushed blobs are held an hour for their manifest, a hold the
        // manifest ends, so a deleted image's bytes go at the next collection.
        let nodes = try cluster.configs.map { try RegistryProcess(self, storePath: $0) }
        var random = TestRandom(seed: 14_020)
        let base = try ImageFixture.layer([("base", random.bytes(1_500_000))])
        let images = try (0..<9).map { i in
            ImageFixture(layers: [base, try ImageFixture.layer([("app\(i)", random.bytes(300_000 + i))])], label: "app-\(i)")
        }
        let (failures, collections) = try pushConcurrentlyWhileCollecting(images, to: nodes, gcStore: cluster.configs[2])
        XCTAssertEqual(failures, [])
        XCTAssertGreaterThan(collections, 0)

        for (i, image) in images.enumerated() {
            let node = nodes[(i + 1) % 3]
            let manifest = try node.request("GET", "/v2/team/app\(i)/manifests/v1", headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"])
            XCTAssertEqual(manifest.body, image.manifest, "app\(i)")
            for blob in [image.config] + image.layers {
                XCTAssertEqual(try node.request("GET", "/v2/team/app\(i)/blobs/\(blob.sha256)").body, blob, "app\(i) through node \((i + 1) % 3)")
            }
        }
        let unique = Set(images.flatMap(\.blobs)).reduce(0) { $0 + $1.count }
        let stored = try bucketBytes(cluster)
        XCTAssertLessThan(stored, unique + unique / 10, "the 1.5 MB base layer is in the bucket once, not nine times")
        XCTAssertTrue(try runBlobctl(["--store", cluster.configs[1], "fsck"]).stdout.contains("healthy"))

        // Delete one image through the registry: its own layer leaves the bucket at the next
        // collection (its packs compacted or removed).
        let doomed = images[4]
        XCTAssertEqual(try nodes[0].request("DELETE", "/v2/team/app4/manifests/\(doomed.manifestDigest)").status, 202)
        let deleted = Date()
        var after = stored
        while after > stored - 250_000 && Date().timeIntervalSince(deleted) < 60 {
            usleep(500_000)
            let gc = try runBlobctl(["--store", cluster.configs[1], "gc", "--json"])
            XCTAssertEqual(gc.status, 0, gc.stderr)
            after = try bucketBytes(cluster)
        }
        print("a deleted image's layer left the bucket \(String(format: "%.1f", Date().timeIntervalSince(deleted))) s after its DELETE")
        XCTAssertLessThan(after, stored - 250_000, "app4's 300 kB layer was freed in the bucket (\(stored) → \(after) bytes)")
        XCTAssertEqual(try nodes[2].request("GET", "/v2/team/app4/blobs/\(doomed.layers[1].sha256)").status, 404)
        XCTAssertEqual(try nodes[2].request("GET", "/v2/team/app5/blobs/\(images[5].layers[1].sha256)").body, images[5].layers[1])
    }

    /// Nodes are interchangeable: one added and one removed (taken out of rotation, then
    /// stopped) while pushes run, with no resharding and no failed request; every image then
    /// pulls back whole through the node that joined last.
    func testNodesComeAndGoWhilePushesRun() throws {
        let cluster = try makeCluster(nodes: 3)
        let first = try RegistryProcess(self, storePath: cluster.configs[0])
        let second = try RegistryProcess(self, storePath: cluster.configs[1])
        let rotation = LockedNodes([first, second])
        let images = try (0..<12).map { try registryImage(seed: 14_040 + UInt64($0), layerCount: 2, layerBytes: 200_000) }
        let failures = LockedList()
        let pushing = DispatchGroup()
        pushing.enter()
        DispatchQueue.global().async {
            DispatchQueue.concurrentPerform(iterations: images.count) { i in
                usleep(UInt32(i) * 150_000) // spread over the joins and leaves
                // Each request goes to whichever node the balancer picks at that moment.
                do {
                    for blob in [images[i].config] + images[i].layers { try rotation.send { try $0.pushBlob("team/svc\(i)", blob) } }
                    try rotation.send { node in
                        let r = try node.pushManifest("team/svc\(i)", "v1", images[i].manifest)
                        if r.status != 201 { throw RegistryTestError("manifest: \(r.status) \(r.text)") }
                    }
                } catch { failures.append("push \(i): \(error)") }
            }
            pushing.leave()
        }
        usleep(400_000)
        let joined = try RegistryProcess(self, storePath: cluster.configs[2])
        rotation.add(joined)
        usleep(400_000)
        rotation.remove(first)
        first.stop() // graceful: what it was serving finishes
        pushing.wait()
        XCTAssertEqual(failures.items, [])
        for (i, image) in images.enumerated() {
            XCTAssertEqual(try joined.request("GET", "/v2/team/svc\(i)/manifests/v1", headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"]).body, image.manifest)
            for blob in [image.config] + image.layers {
                XCTAssertEqual(try joined.request("GET", "/v2/team/svc\(i)/blobs/\(blob.sha256)").body, blob, "svc\(i)")
            }
        }
    }

    /// A node killed with SIGKILL mid-upload: the others keep serving, what was committed
    /// stays whole, the store stays healthy after a collection.
    func testANodeKilledMidUploadLosesNothingCommitted() throws {
        let cluster = try makeCluster(nodes: 2)
        let survivor = try RegistryProcess(self, storePath: cluster.configs[0])
        let victim = try RegistryProcess(self, storePath: cluster.configs[1])
        let committed = try registryImage(seed: 14_021, layerCount: 2, layerBytes: 500_000)
        try victim.pushImage("team/kept", tag: "v1", committed)

        // A chunked upload left half done on the victim, then the victim dies.
        var random = TestRandom(seed: 14_022)
        let start = try victim.request("POST", "/v2/team/half/blobs/uploads/")
        XCTAssertEqual(start.status, 202)
        let location = try XCTUnwrap(start.header("Location"))
        let patch = try victim.request("PATCH", location, headers: ["Content-Type": "application/octet-stream"], body: random.bytes(2_000_000))
        XCTAssertEqual(patch.status, 202)
        victim.killHard()

        for blob in [committed.config] + committed.layers {
            XCTAssertEqual(try survivor.request("GET", "/v2/team/kept/blobs/\(blob.sha256)").body, blob)
        }
        try survivor.pushImage("team/after", tag: "v1", try registryImage(seed: 14_023))
        let gc = try runBlobctl(["--store", cluster.configs[0], "gc", "--json"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        for blob in [committed.config] + committed.layers {
            XCTAssertEqual(try survivor.request("GET", "/v2/team/kept/blobs/\(blob.sha256)").body, blob, "after gc")
        }
        XCTAssertTrue(try runBlobctl(["--store", cluster.configs[0], "fsck"]).stdout.contains("healthy"))
    }

    /// One collection frees many small pack objects (each `put` of a small file uploads
    /// its own): every empty pack is claimed in one lock query on one connection and the
    /// objects go in DeleteObjects batches. With 4 index connections, a claim holding a
    /// pooled connection each would hang the collection at its fourth pack.
    func testOneCollectionRemovesHundredsOfSmallPackObjects() throws {
        let cluster = try makeCluster(nodes: 1, maxConnections: 4)
        let dir = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 14_030)
        let files = (0..<150).map { i in dir + "/f\(i)" }
        for file in files { FileManager.default.createFile(atPath: file, contents: Data(random.bytes(20_000))) }
        let put = try runBlobctl(["--store", cluster.configs[0], "put", "--json"] + files, timeout: 120)
        XCTAssertEqual(put.status, 0, put.stderr)
        let digests = put.stdout.matches(of: /sha256:[0-9a-f]{64}/).map { String($0.output) }
        XCTAssertEqual(Set(digests).count, files.count)
        let objects = try cluster.client.list(prefix: "packs/").count
        XCTAssertGreaterThanOrEqual(objects, 100, "each put should upload a pack of its own")

        XCTAssertEqual(try runBlobctl(["--store", cluster.configs[0], "rm"] + digests, timeout: 60).status, 0)
        let gc = try runBlobctl(["--store", cluster.configs[0], "gc", "--json"], timeout: 120)
        XCTAssertEqual(gc.status, 0, "gc: \(gc.stderr)")
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(gc.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["packsRemoved"] as? Int, objects, gc.stdout)
        XCTAssertEqual(try cluster.client.list(prefix: "packs/").count, 0)
        XCTAssertTrue(try runBlobctl(["--store", cluster.configs[0], "fsck"]).stdout.contains("healthy"))
    }
}

/// Ceph losing an OSD under a pull storm: with 3 OSDs keeping 3 copies, pulls go on.
final class ClusterOSDLossTests: XCTestCase {
    func testPullsGoOnWhenAnOSDDies() throws {
        let ceph: CephCluster
        do { ceph = try CephCluster.start(osds: 3, replicas: 3) } catch {
            XCTFail("\(error)")
            throw error
        }
        addTeardownBlock { ceph.stop() }
        let postgres = try PostgresServer(self)
        let directory = try makeTemporaryDirectory(self)
        let config: [String: Any] = [
            "index": ["url": postgres.url, "schema": "osdloss"],
            // The smallest block cache, so the storm keeps reading from Ceph.
            "packs": ["s3": ["endpoint": ceph.endpoint, "bucket": "osdloss", "accessKey": CephCluster.accessKey,
                             "secretKey": CephCluster.secretKey, "region": CephCluster.region, "cacheMiB": 16]],
            "node": ["directory": directory + "/node"],
        ]
        let path = directory + "/node.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try runBlobctl(["init", "--cluster", path]).status, 0)
        let node = try RegistryProcess(self, storePath: path)
        let image = try registryImage(seed: 14_030, layerCount: 4, layerBytes: 8_000_000)
        try node.pushImage("team/big", tag: "v1", image)

        let failures = LockedList()
        let pulls = LockedList()
        let storm = DispatchGroup()
        let stop = Date().addingTimeInterval(8)
        for worker in 0..<6 {
            storm.enter()
            DispatchQueue.global().async {
                var n = worker
                while Date() < stop {
                    let blob = image.layers[n % image.layers.count]
                    do {
                        let r = try node.request("GET", "/v2/team/big/blobs/\(blob.sha256)", timeout: 60)
                        if r.status != 200 || r.body != blob { failures.append("\(r.status) for layer \(n % image.layers.count)") }
                        pulls.append("ok")
                    } catch { failures.append("\(error)") }
                    n += 1
                }
                storm.leave()
            }
        }
        Thread.sleep(forTimeInterval: 2)
        try ceph.killOneOSD()
        storm.wait()
        XCTAssertEqual(failures.items, [], "every pull during the OSD loss came back whole")
        XCTAssertGreaterThan(pulls.items.count, 12)
        print("pull storm: \(pulls.items.count) pulls of 8 MB layers in 8 s, one OSD of 3 killed after 2 s, \(failures.items.count) failed")
        // And writes go on with a replica missing.
        try node.pushImage("team/after", tag: "v1", try registryImage(seed: 14_031))
    }
}


/// The nodes a load balancer would send requests to, changed while requests run.
final class LockedNodes: @unchecked Sendable {
    private let lock = NSLock()
    private var nodes: [RegistryProcess]
    init(_ nodes: [RegistryProcess]) { self.nodes = nodes }
    func pick(_ n: Int) -> RegistryProcess { lock.lock(); defer { lock.unlock() }; return nodes[n % nodes.count] }
    func add(_ node: RegistryProcess) { lock.lock(); nodes.append(node); lock.unlock() }
    func remove(_ node: RegistryProcess) { lock.lock(); nodes.removeAll { $0 === node }; lock.unlock() }
    func contains(_ node: RegistryProcess) -> Bool { lock.lock(); defer { lock.unlock() }; return nodes.contains { $0 === node } }

    /// Sends one request through a picked node; a node taken out of rotation between the
    /// pick and the connect is skipped, as a balancer retries a refused connection elsewhere.
    func send(_ request: (RegistryProcess) throws -> Void) throws {
        var attempt = Int.random(in: 0..<1000)
        while true {
            let node = pick(attempt)
            do { return try request(node) } catch where !contains(node) && "\(error)".contains("errno 111") {
                attempt += 1
            }
        }
    }
}
