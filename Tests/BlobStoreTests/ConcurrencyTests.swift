import BlobStore
import Dispatch
import Foundation
import XCTest

final class ConcurrencyTests: XCTestCase {
    /// Eight tasks put the same blob and eight put different ones (sharing a common part),
    /// all at once, through one Store.
    func testConcurrentPutsFromTasks() async throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 400)
        let common = random.bytes(2 << 20)
        let same = random.bytes(3 << 20)
        let different = (0..<8).map { i -> [UInt8] in
            var r = TestRandom(seed: 500 + UInt64(i))
            return common + r.bytes(1 << 20)
        }
        let results = try await withThrowingTaskGroup(of: IngestResult.self) { group in
            for _ in 0..<8 { group.addTask { try store.put(same) } }
            for data in different { group.addTask { try store.put(data) } }
            var all: [IngestResult] = []
            for try await r in group { all.append(r) }
            return all
        }
        XCTAssertEqual(results.filter { $0.digest == same.sha256 }.count, 8)
        XCTAssertEqual(results.filter { $0.digest == same.sha256 && !$0.alreadyPresent }.count, 1, "exactly one put stores it")
        XCTAssertEqual(try store.readAll(same.sha256), same)
        for data in different { XCTAssertEqual(try store.readAll(data.sha256, verify: true), data) }
        XCTAssertEqual(try store.totals().blobs, 9)
        try assertCountsConsistent(store)
    }

    /// Several blobctl processes put into one store at the same time.
    func testConcurrentPutsFromProcesses() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        _ = try Store.create(at: root)
        var random = TestRandom(seed: 401)
        let shared = random.bytes(1 << 20)
        var files: [(String, [UInt8])] = []
        for i in 0..<6 {
            var r = TestRandom(seed: 600 + UInt64(i % 3)) // pairs of identical files
            let data = shared + r.bytes(700_000)
            let path = dir + "/f\(i)"
            FileManager.default.createFile(atPath: path, contents: Data(data))
            files.append((path, data))
        }
        let outcomes = UncheckedBox<[CommandResult?]>(Array(repeating: nil, count: files.count))
        let lock = NSLock()
        let paths = files.map(\.0)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            let r = try? runBlobctl(["--store", root, "put", paths[i]])
            lock.lock()
            outcomes.value[i] = r
            lock.unlock()
        }
        for (i, outcome) in outcomes.value.enumerated() {
            let r = try XCTUnwrap(outcome)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), files[i].1.sha256.description)
        }
        let store = try Store.open(at: root)
        XCTAssertEqual(try store.totals().blobs, 3)
        for (_, data) in files { XCTAssertEqual(try store.readAll(data.sha256, verify: true), data) }
        try assertCountsConsistent(store)
        XCTAssertTrue(try store.leases().isEmpty, "every process released its lease")
    }
}

final class UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
