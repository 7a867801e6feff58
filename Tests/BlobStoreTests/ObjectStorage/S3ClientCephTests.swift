import BlobStore
import Foundation
import ObjectStorage
import XCTest

/// S3Client against a real radosgw (single-node memstore Ceph, started once for the
/// class). Each test works in a bucket of its own.
final class S3ClientCephTests: XCTestCase {
    nonisolated(unsafe) private static var cluster: Result<CephCluster, Error>?

    override class func setUp() {
        super.setUp()
        cluster = Result { try CephCluster.start() }
        if case .success(let c)? = cluster {
            print("Ceph (mon, 1 memstore OSD, radosgw) up in \(String(format: "%.1f", c.startSeconds)) s at \(c.endpoint)")
        }
    }

    override class func tearDown() {
        if case .success(let c)? = cluster { c.stop() }
        cluster = nil
        super.tearDown()
    }

    private var ceph: CephCluster!
    private var client: S3Client!
    private var bucket = ""

    override func setUpWithError() throws {
        guard let cluster = Self.cluster else { throw RegistryTestError("Ceph was not started") }
        do {
            ceph = try cluster.get()
        } catch {
            // A failure, not a skip: CI installs Ceph, so its absence is a broken setup.
            XCTFail("\(error)")
            throw error
        }
        bucket = "test-" + String(UUID().uuidString.prefix(8)).lowercased()
        client = try ceph.client(bucket: bucket)
        try client.createBucket()
    }

    override func tearDownWithError() throws {
        try client?.shutdown()
    }

    private func sha256(_ bytes: [UInt8]) -> Digest { bytes.withUnsafeBytes { SHA256Hasher.hash($0) } }

    func testPutGetRangeHeadDeleteRoundTrip() throws {
        var random = TestRandom(seed: 1)
        let bytes = random.bytes(1 << 20 | 12345)
        let etag = try client.put(key: "packs/one", bytes: bytes)
        XCTAssertFalse(etag.isEmpty)

        XCTAssertEqual(try client.get(key: "packs/one"), bytes)
        XCTAssertEqual(try client.get(key: "packs/one", range: 1000..<5000), Array(bytes[1000..<5000]))
        XCTAssertEqual(try client.get(key: "packs/one", range: bytes.count - 10..<bytes.count + 100),
                       Array(bytes.suffix(10)), "a range past the end is cut short")

        var into = [UInt8](repeating: 0, count: 4096)
        let n = try into.withUnsafeMutableBytes { try client.get(key: "packs/one", range: 77..<(77 + 4096), into: $0) }
        XCTAssertEqual(n, 4096)
        XCTAssertEqual(into, Array(bytes[77..<(77 + 4096)]))
        var small = [UInt8](repeating: 0, count: 100)
        XCTAssertThrowsError(try small.withUnsafeMutableBytes { try client.get(key: "packs/one", into: $0) })

        let info = try XCTUnwrap(try client.head(key: "packs/one"))
        XCTAssertEqual(info.size, bytes.count)
        XCTAssertEqual(info.etag, etag)

        XCTAssertThrowsError(try client.get(key: "packs/one", range: bytes.count + 10..<bytes.count + 20)) { error in
            XCTAssertEqual((error as? S3Error)?.status, 416, "\(error)")
        }

        try client.put(key: "packs/empty", bytes: [UInt8]())
        XCTAssertEqual(try client.get(key: "packs/empty"), [])
        XCTAssertEqual(try client.head(key: "packs/empty")?.size, 0)

        try client.delete(key: "packs/one")
        XCTAssertNil(try client.head(key: "packs/one"))
        try client.delete(key: "packs/one")   // already gone: still success
    }

    func testMissingKey() throws {
        XCTAssertNil(try client.head(key: "no/such/key"))
        XCTAssertThrowsError(try client.get(key: "no/such/key")) { error in
            let e = error as? S3Error
            XCTAssertEqual(e?.status, 404, "\(error)")
            XCTAssertEqual(e?.code, "NoSuchKey")
            XCTAssertEqual(e?.isNotFound, true)
            XCTAssertEqual(e?.isRetryable, false)
        }
        XCTAssertThrowsError(try client.get(key: "no/such/key", range: 0..<10)) { error in
            XCTAssertEqual((error as? S3Error)?.code, "NoSuchKey", "\(error)")
        }
    }

    func testCreateBucketIsIdempotent() throws {
        try client.createBucket()
        try client.createBucket()
        XCTAssertEqual(try client.list(), [])
    }

    func testMultipartUploadStreamedFromDisk() throws {
        let folder = try makeTemporaryDirectory(self)
        let path = folder + "/pack"
        var random = TestRandom(seed: 40)
        let bytes = random.bytes(40 << 20 | 4321)   // 3 parts of 16 MiB: 16, 16, 8 MiB and a bit
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))

        let etag = try client.putFile(key: "packs/big", path: path)
        XCTAssertTrue(etag.hasSuffix("-3"), "a 3-part multipart ETag, not \(etag)")
        let info = try XCTUnwrap(try client.head(key: "packs/big"))
        XCTAssertEqual(info.size, bytes.count)

        let back = try client.get(key: "packs/big")
        XCTAssertEqual(back.count, bytes.count)
        XCTAssertEqual(sha256(back), sha256(bytes))
        // Across the first part boundary.
        XCTAssertEqual(try client.get(key: "packs/big", range: (16 << 20) - 100..<(16 << 20) + 100),
                       Array(bytes[(16 << 20) - 100..<(16 << 20) + 100]))
        // Straight into a caller's buffer.
        var whole = [UInt8](repeating: 0, count: bytes.count)
        XCTAssertEqual(try whole.withUnsafeMutableBytes { try client.get(key: "packs/big", into: $0) }, bytes.count)
        XCTAssertEqual(sha256(whole), sha256(bytes))

        // No upload left behind.
        XCTAssertEqual(try client.list().map(\.key), ["packs/big"])
    }

    func testSmallFileIsOnePut() throws {
        let folder = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 3)
        let bytes = random.bytes(100_000)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/small", contents: Data(bytes)))
        let etag = try client.putFile(key: "small", path: folder + "/small")
        XCTAssertFalse(etag.contains("-"), "single PUT ETag is an MD5, not \(etag)")
        XCTAssertEqual(try client.get(key: "small"), bytes)
        XCTAssertThrowsError(try client.putFile(key: "x", path: folder + "/missing")) { error in
            XCTAssertEqual((error as? S3Error)?.kind, .localFile, "\(error)")
        }
    }

    /// 1,500 keys: listed whole through continuation tokens (pages of 100, and of the
    /// default 1000), then removed by DeleteObjects in two batches (1000 + 500).
    func testListingAndBatchDeleteOfManyKeys() throws {
        let keys = (0..<1500).map { String(format: "many/%05d", $0) }
        let client = self.client!
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in stride(from: worker, to: keys.count, by: 8) {
                do { try client.put(key: keys[i], bytes: [UInt8(i & 0xff)]) } catch { XCTFail("\(keys[i]): \(error)") }
            }
        }
        try client.put(key: "other/outside-the-prefix", bytes: [1, 2, 3])

        let paged = try client.list(prefix: "many/", pageSize: 100)
        XCTAssertEqual(paged.map(\.key), keys)
        XCTAssertTrue(paged.allSatisfy { $0.size == 1 })
        XCTAssertEqual(try client.list(prefix: "many/").map(\.key), keys)
        XCTAssertEqual(try client.list().count, 1501)

        let failures = try client.deleteObjects(keys: keys + ["many/never-existed"])
        XCTAssertEqual(failures, [])
        XCTAssertEqual(try client.list(prefix: "many/"), [])
        XCTAssertEqual(try client.list().map(\.key), ["other/outside-the-prefix"])
    }

    func testAwkwardKeysRoundTrip() throws {
        let keys = ["with space/a b.txt", "unicode/ünïcödé-€-日本語.bin", "plus+sign+key", "a+b c=d&e?f#g%h;i,j:k@l$m",
                    "tilde~star*(paren)'!", "double//slash", "trailing space ", "<xml>&amp;\"quote\""]
        for (i, key) in keys.enumerated() {
            try client.put(key: key, bytes: Array(key.utf8) + [UInt8(i)])
        }
        for (i, key) in keys.enumerated() {
            XCTAssertEqual(try client.get(key: key), Array(key.utf8) + [UInt8(i)], key)
            XCTAssertEqual(try client.head(key: key)?.size, key.utf8.count + 1, key)
        }
        let listed = try client.list().map(\.key)
        XCTAssertEqual(listed, keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        XCTAssertEqual(try client.list(prefix: "a+b c=").map(\.key), ["a+b c=d&e?f#g%h;i,j:k@l$m"])
        XCTAssertEqual(try client.list(prefix: "plus+").map(\.key), ["plus+sign+key"])
        XCTAssertEqual(try client.deleteObjects(keys: keys), [])
        XCTAssertEqual(try client.list(), [])
    }

    func testWrongSecretKeyIsRejected() throws {
        let intruder = try ceph.client(bucket: bucket, secretKey: "not-the-secret")
        defer { try? intruder.shutdown() }
        XCTAssertThrowsError(try intruder.put(key: "x", bytes: [1, 2, 3])) { error in
            let e = error as? S3Error
            XCTAssertEqual(e?.status, 403, "\(error)")
            XCTAssertEqual(e?.code, "SignatureDoesNotMatch", "\(error)")
            XCTAssertEqual(e?.isRetryable, false)
        }
        // HEAD answers carry no body, so only the status tells.
        XCTAssertThrowsError(try intruder.head(key: "x")) { error in
            XCTAssertEqual((error as? S3Error)?.status, 403, "\(error)")
        }
        XCTAssertNil(try client.head(key: "x"), "nothing was stored")
    }

    /// putFile and a full GET of 256 MiB, with MB/s printed. A measurement, not a check of
    /// speed: runs only with BLOBSTORE_S3_THROUGHPUT=1.
    func testThroughputOf256MiB() throws {
        guard ProcessInfo.processInfo.environment["BLOBSTORE_S3_THROUGHPUT"] != nil else {
            throw XCTSkip("a measurement: set BLOBSTORE_S3_THROUGHPUT=1 to run it")
        }
        let folder = try makeTemporaryDirectory(self)
        let size = 256 << 20
        var random = TestRandom(seed: 256)
        let bytes = random.bytes(size)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/pack", contents: Data(bytes)))
        let mb = Double(size) / 1_000_000

        var started = Date()
        try client.putFile(key: "packs/256", path: folder + "/pack")
        let put = Date().timeIntervalSince(started)
        started = Date()
        let back = try client.get(key: "packs/256")
        let get = Date().timeIntervalSince(started)
        var into = [UInt8](repeating: 0, count: size)
        started = Date()
        _ = try into.withUnsafeMutableBytes { try client.get(key: "packs/256", into: $0) }
        let getInto = Date().timeIntervalSince(started)
        XCTAssertEqual(sha256(back), sha256(bytes))
        XCTAssertEqual(sha256(into), sha256(bytes))
        print(String(format: "256 MiB: putFile %.2f s (%.0f MB/s), get %.2f s (%.0f MB/s), get into buffer %.2f s (%.0f MB/s)",
                     put, mb / put, get, mb / get, getInto, mb / getInto))
    }
}
