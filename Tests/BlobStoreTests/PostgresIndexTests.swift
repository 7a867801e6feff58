import BlobStore
import Foundation
import Logging
import PostgresIndex
import XCTest

/// The PostgreSQL index engine keeps the rules the store relies on from LMDB (see
/// `IndexEngine`), checked against a real PostgreSQL 15.
final class PostgresIndexTests: XCTestCase {
    private func makeIndex(_ server: PostgresServer, schema: String? = nil) throws -> PostgresIndex {
        let settings = schema.map { server.settings(schema: $0) } ?? server.settings()
        return try PostgresIndex(settings: settings, databaseNames: Store.databaseNames, logger: Logger(label: "test"))
    }

    func testKeysScanInBytewiseOrderAndValuesRoundTrip() throws {
        let server = try PostgresServer(self)
        let index = try makeIndex(server)
        let keys: [[UInt8]] = [[0xff, 0x00], [0x00], [0x80], [0x00, 0x00], [0x7f], [0xff], [0x01], Array("sha256:ab".utf8)]
        try index.write { txn in
            for (n, key) in keys.enumerated() { try txn.put("chunks", key, [UInt8](repeating: UInt8(n), count: n)) }
        }
        func scanned(from start: [UInt8]? = nil) throws -> [[UInt8]] {
            try index.read { txn in
                var seen: [[UInt8]] = []
                try txn.scan("chunks", from: start) { key, _ in seen.append(Array(key)); return true }
                return seen
            }
        }
        XCTAssertEqual(try scanned(), keys.sorted { $0.lexicographicallyPrecedes($1) }, "bytewise order, as LMDB")
        XCTAssertEqual(try scanned(from: [0x80]), [[0x80], [0xff], [0xff, 0x00]])
        try index.read { txn in
            for (n, key) in keys.enumerated() {
                XCTAssertEqual(try txn.get("chunks", key).map { Array($0) }, [UInt8](repeating: UInt8(n), count: n))
            }
            XCTAssertNil(try txn.get("chunks", [0x02]))
            XCTAssertNil(try txn.get("blobs", [0x00]), "databases are separate")
        }
        try index.write { txn in
            XCTAssertTrue(try txn.delete("chunks", [0x00]))
            XCTAssertFalse(try txn.delete("chunks", [0x00]))
            try txn.put("chunks", [0x01], [9, 9])
        }
        try index.read { txn in
            XCTAssertNil(try txn.get("chunks", [0x00]))
            XCTAssertEqual(try txn.get("chunks", [0x01]).map { Array($0) }, [9, 9])
        }
    }

    /// Two engines (two nodes) and several threads each incrementing one counter: without
    /// the writer lock, READ COMMITTED read-modify-writes lose updates.
    func testWritersAreSerialisedAcrossNodes() throws {
        let server = try PostgresServer(self)
        let schema = "serial_" + UUID().uuidString.prefix(6).lowercased()
        let nodes = [try makeIndex(server, schema: schema), try makeIndex(server, schema: schema)]
        let key = Array("counter".utf8)
        let failures = LockedList()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let index = nodes[worker % 2]
            for _ in 0..<25 {
                do {
                    try index.write { txn in
                        let now = try txn.get("meta", key).map { $0.loadUnaligned(as: UInt64.self) } ?? 0
                        try withUnsafeBytes(of: now + 1) { try txn.put("meta", UnsafeRawBufferPointer(key.withUnsafeBytes { $0 }), $0) }
                    }
                } catch { failures.append("\(error)") }
            }
        }
        XCTAssertEqual(failures.items, [])
        let total = try nodes[1].read { txn in try txn.get("meta", key).map { $0.loadUnaligned(as: UInt64.self) } }
        XCTAssertEqual(total, 200)
    }

    /// A read transaction sees one snapshot, whatever commits meanwhile; a write that
    /// throws changes nothing.
    func testReadersSeeOneSnapshotAndAFailedWriteChangesNothing() throws {
        let server = try PostgresServer(self)
        let index = try makeIndex(server)
        try index.write { txn in try txn.put("blobs", [1], [1]) }
        try index.read { txn in
            XCTAssertEqual(try txn.get("blobs", [1]).map { Array($0) }, [1])
            let done = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                try? index.write { txn in try txn.put("blobs", [1], [2]); try txn.put("blobs", [2], [2]) }
                done.signal()
            }
            XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "a writer never waits for a reader")
            XCTAssertEqual(try txn.get("blobs", [1]).map { Array($0) }, [1], "still the snapshot")
            XCTAssertNil(try txn.get("blobs", [2]))
        }
        XCTAssertEqual(try index.read { try $0.get("blobs", [1]).map { Array($0) } }, [2])

        struct Refused: Error {}
        XCTAssertThrowsError(try index.write { txn in
            try txn.put("blobs", [3], [3])
            try txn.delete("blobs", [1])
            throw Refused()
        })
        try index.read { txn in
            XCTAssertNil(try txn.get("blobs", [3]))
            XCTAssertEqual(try txn.get("blobs", [1]).map { Array($0) }, [2])
        }
    }

    /// Scans page through the table; a collector deleting what it visits still sees every entry once.
    func testScanPagesThroughThousandsOfEntriesWhileDeletingThem() throws {
        let server = try PostgresServer(self)
        let index = try makeIndex(server)
        let count = 2 * PostgresTransaction.scanPage + 300
        try index.write { txn in
            for n in 0..<count { try txn.put("garbage", withUnsafeBytes(of: UInt32(n).bigEndian) { Array($0) }, [UInt8(n & 0xff)]) }
        }
        let visited = try index.write { txn -> [UInt32] in
            var seen: [UInt32] = []
            var keys: [[UInt8]] = []
            try txn.scan("garbage") { key, _ in
                seen.append(UInt32(bigEndian: key.loadUnaligned(as: UInt32.self)))
                keys.append(Array(key))
                if keys.count == 100 { for k in keys { try txn.delete("garbage", k) }; keys.removeAll() }
                return true
            }
            for k in keys { try txn.delete("garbage", k) }
            return seen
        }
        XCTAssertEqual(visited, (0..<UInt32(count)).map { $0 })
        XCTAssertEqual(try index.read { txn in var n = 0; try txn.scan("garbage") { _, _ in n += 1; return true }; return n }, 0)
    }

    /// The index down is `unavailable` (the registry's 503, blobctl's exit 75), and the same
    /// engine works again once the server is back: broken connections are not reused.
    func testAnIndexRestartIsUnavailableThenRecovers() throws {
        let server = try PostgresServer(self)
        let index = try makeIndex(server)
        try index.write { txn in try txn.put("meta", [7], [7]) }
        server.stop(mode: "fast")
        XCTAssertThrowsError(try index.read { try $0.get("meta", [7]) }) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .unavailable, "\(error)")
        }
        try server.start()
        XCTAssertEqual(try index.read { try $0.get("meta", [7]).map { Array($0) } }, [7])
        try index.write { txn in try txn.put("meta", [8], [8]) }
    }
}

/// Cluster mode's liveness and one-collector lock, as two nodes see each other.
final class PostgresCoordinationTests: XCTestCase {
    func testAHolderIsAliveUntilItsConnectionGoesAndOneCollectorRunsAtATime() throws {
        let server = try PostgresServer(self)
        let settings = server.settings()
        let nodeA = PostgresCoordination(index: try PostgresIndex(settings: settings, databaseNames: Store.databaseNames, logger: Logger(label: "a")))
        let indexB = try PostgresIndex(settings: settings, databaseNames: Store.databaseNames, logger: Logger(label: "b"))
        let nodeB = PostgresCoordination(index: indexB)

        let tokenA = try nodeA.myToken()
        XCTAssertEqual(try nodeA.myToken(), tokenA, "one token per process")
        XCTAssertTrue(nodeB.isAlive(token: tokenA))
        XCTAssertFalse(nodeB.isAlive(token: tokenA &+ 1), "nobody holds that one")

        // One collector: B cannot take the role while A holds it, and gets it once A is done.
        let entered = DispatchSemaphore(value: 0), leave = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = try? nodeA.withMaintenanceLock(wait: false, onWait: nil) { entered.signal(); leave.wait() }
            done.signal()
        }
        entered.wait()
        XCTAssertNil(try nodeB.withMaintenanceLock(wait: false, onWait: nil) { 1 })
        leave.signal()
        done.wait()
        XCTAssertEqual(try nodeB.withMaintenanceLock(wait: false, onWait: nil) { 2 }, 2)

        // A's process dies (its connections end): B sees its token dead.
        try indexB.withConnection { connection in
            _ = try connection.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND application_name = '' AND backend_type = 'client backend' AND query LIKE '%pg_advisory_lock%'", logger: Logger(label: "t")).wait()
        }
        var gone = false
        for _ in 0..<50 where !gone { gone = !nodeB.isAlive(token: tokenA); if !gone { usleep(100_000) } }
        XCTAssertTrue(gone, "the lock died with its connection")
        // Node A learns of the closed connection when its event loop reads the server's
        // goodbye, a moment after the server dropped the lock.
        var next = try nodeA.myToken()
        for _ in 0..<50 where next == tokenA { usleep(100_000); next = try nodeA.myToken() }
        XCTAssertNotEqual(next, tokenA, "a node that lost its session takes a new token")
    }
}
