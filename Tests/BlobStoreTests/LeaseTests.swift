import BlobStore
import Foundation
import GC
import XCTest

/// Leases: what keeps in-flight work safe from GC, and how they end — at commit, at abort,
/// when their holder dies (in any pid namespace), or when they expire. Whoever judges a
/// lease dead deletes it, and a commit whose lease is gone fails and stores nothing.
final class LeaseTests: XCTestCase {
    /// An upload idle past its lease: GC ends the lease and may then collect what it
    /// protected, so the commit must fail cleanly — no blob, no lease, a healthy store.
    func testCommitAfterItsLeaseExpiredFailsAndStoresNothing() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 3100)
        let base = random.bytes(12 << 20)
        _ = try store.put(base)
        let session = try store.beginIngest(reference: "upload-1", leaseDuration: 1)
        let derived = base + random.bytes(3 << 20)
        try session.append(derived)
        try session.checkpoint() // the first segment was looked up: it dedups against base
        _ = try store.remove(base.sha256)
        sleep(2)
        let report = try GarbageCollector(store: store).collect()
        XCTAssertGreaterThan(report.chunksFreed, 0, "with the lease over, base's chunks are collected")
        XCTAssertThrowsError(try session.commit()) { error in
            XCTAssertEqual((error as? BlobStoreError)?.code, .notFound, "\(error)")
        }
        XCTAssertFalse(try store.contains(derived.sha256))
        XCTAssertEqual(try store.leases(), [])
        XCTAssertThrowsError(try store.ingestOffset(reference: "upload-1"))
        _ = try GarbageCollector(store: store).collect()
        let check = try StoreChecker(store: store).check()
        XCTAssertTrue(check.isHealthy, "\(check)")
        try assertCountsConsistent(store)
    }

    /// Each checkpoint extends the lease: an upload that keeps sending outlives its
    /// nominal lease duration.
    func testCheckpointsKeepALongUploadAlive() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 3101)
        let session = try store.beginIngest(reference: "slow", leaseDuration: 2)
        var all: [UInt8] = []
        for _ in 0..<3 {
            let part = random.bytes(1 << 20)
            all += part
            try session.append(part)
            try session.checkpoint()
            _ = try GarbageCollector(store: store).collect()
            sleep(1)
        }
        let result = try session.commit()
        XCTAssertEqual(try store.readAll(result.digest, verify: true), all)
    }

    /// An ingest that dedups against a blob's chunks keeps them alive through that blob's
    /// removal and a collection, until it commits — with the dedup lookup done (a whole
    /// segment appended and drained) before the removal.
    func testLeaseProtectsChunksAnIngestReliesOn() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 1002)
        let base = random.bytes(12 << 20)
        _ = try store.put(base)
        let session = try store.beginIngest(reference: "relies")
        let derived = base + random.bytes(100_000)
        try session.append(derived)
        try session.checkpoint() // drains the background stage: the lookups are done
        _ = try store.remove(base.sha256)
        let report = try GarbageCollector(store: store).collect()
        XCTAssertGreaterThan(report.deferred, 0, "garbage the ingest relies on is deferred")
        XCTAssertEqual(report.chunksFreed, 0)
        let result = try session.commit()
        XCTAssertLessThan(result.newChunks, 4, "the ingest reused base's chunks")
        XCTAssertEqual(try store.readAll(result.digest, verify: true), derived)
        try assertCountsConsistent(store)
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.readAll(result.digest, verify: true), derived)
        try assertCountsConsistent(store)
    }

    /// A blob already stored and queued as garbage, committed again without a pin (an
    /// import that references it in its next transaction): the caller's lease protects it.
    func testRecommittedGarbageBlobIsProtectedByTheCallersLease() throws {
        let store = try makeStore(self)
        var random = TestRandom(seed: 3102)
        let data = random.bytes(1 << 20)
        let first = try store.beginIngest()
        try first.append(data)
        _ = try first.commit(pin: false) // unreferenced: queued as garbage now
        // Other work advances the store's generation meanwhile, so the garbage entry's stamp
        // is older than the import's lease: only a fresh stamp lets that lease protect it.
        try store.releaseLease(try store.takeLease(duration: 60, purpose: "other work").id)
        let importLease = try store.takeLease(duration: 600, purpose: "import")
        let again = try store.beginIngest()
        try again.append(data)
        XCTAssertTrue(try again.commit(pin: false).alreadyPresent)
        _ = try GarbageCollector(store: store).collect()
        XCTAssertTrue(try store.contains(data.sha256), "the import's lease keeps what it just committed")
        try store.releaseLease(importLease.id)
        _ = try GarbageCollector(store: store).collect()
        XCTAssertFalse(try store.contains(data.sha256), "unreferenced once nobody needs it")
    }

    /// A process-bound lease is alive exactly while its process runs — also when that
    /// process is in another pid namespace, where its pid means nothing here — and GC
    /// deletes it once the process is gone.
    func testProcessLeaseFollowsItsProcessAcrossPidNamespaces() throws {
        guard getuid() == 0, access("/usr/bin/unshare", X_OK) == 0 else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("needs root and unshare") }
            throw XCTSkip("needs root and unshare")
        }
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        let store = try Store.create(at: root)
        let (process, input) = try startPut(root: root, launcher: ["/usr/bin/unshare", "--pid", "--fork", "--kill-child"])
        input.fileHandleForWriting.write(Data(repeating: 7, count: 1 << 20))
        var lease: Lease?
        for _ in 0..<200 where lease == nil {
            lease = try store.leases().first
            if lease == nil { usleep(20_000) }
        }
        let held = try XCTUnwrap(lease, "the put took a lease")
        XCTAssertNotEqual(held.holder, 0)
        XCTAssertTrue(store.isAlive(held))
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.leases().map(\.id), [held.id], "a live lease survives GC")
        kill(process.processIdentifier, SIGKILL) // --kill-child takes the put with it
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        var gone = false
        for _ in 0..<200 where !gone {
            gone = !store.isAlive(held)
            if !gone { usleep(20_000) }
        }
        XCTAssertTrue(gone, "the lease died with its process")
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.leases(), [], "GC deletes dead leases")
    }

    /// Leases of killed processes and resumable ingests abandoned past their lease are
    /// purged by GC, so they neither hold garbage back nor pile up.
    func testDeadLeasesAndAbandonedIngestsArePurged() throws {
        let dir = try makeTemporaryDirectory(self)
        let root = dir + "/store"
        let store = try Store.create(at: root)
        let (process, input) = try startPut(root: root)
        input.fileHandleForWriting.write(Data(repeating: 1, count: 1 << 20))
        for _ in 0..<200 where try store.leases().isEmpty { usleep(20_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()

        let abandoned = try store.beginIngest(reference: "abandoned", leaseDuration: 1)
        var random = TestRandom(seed: 3103)
        try abandoned.append(random.bytes(1 << 20))
        try abandoned.checkpoint()
        XCTAssertEqual(try store.leases().count, 2)
        sleep(2)
        _ = try runBlobctl(["--store", root, "put", "-"], input: [1, 2, 3]) // a process that exits cleanly
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.leases(), [])
        let lockFiles = try FileManager.default.contentsOfDirectory(atPath: root + "/locks")
        XCTAssertEqual(lockFiles, [], "liveness files of exited processes are removed")
        XCTAssertThrowsError(try store.ingestOffset(reference: "abandoned"))
        XCTAssertThrowsError(try store.resumeIngest(reference: "abandoned"))
    }
}
