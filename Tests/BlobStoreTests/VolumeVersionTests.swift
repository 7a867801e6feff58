import BlobStore
import Foundation
import GC
import XCTest

/// A volume keeps every snapshot it had as a version: history, export and restore of any
/// of them, forgetting the oldest, and `gc` freeing exactly what the dropped ones held.
final class VolumeVersionTests: XCTestCase {
    /// A snapshot blob, unpinned as engines store them (the volume's reference keeps it).
    private func put(_ store: Store, _ text: String) throws -> Digest {
        let session = try store.beginIngest()
        try session.append(Array(text.utf8))
        return try session.commit(mediaType: "application/x-tar", pin: false).digest
    }

    func testVersionsAreKeptRestoredAndForgotten() throws {
        let store = try makeStore(self)
        let contents = ["one", "two", "three"].map { String(repeating: $0, count: 5000) }
        for c in contents { try store.setVolumeSnapshot("v", try put(store, c)) }
        try store.setVolumeSnapshot("v", try store.volume("v").snapshot!) // the same content again: no version
        var versions = try store.volumeVersions("v")
        XCTAssertEqual(versions.map(\.number), [1, 2, 3])
        XCTAssertEqual(versions.map(\.current), [false, false, true])
        XCTAssertEqual(try store.readAll(try store.volumeVersion("v", 1)), Array(contents[0].utf8))
        XCTAssertThrowsError(try store.volumeVersion("v", 4)) { XCTAssertTrue("\($0)".contains("versions 1 to 3"), "\($0)") }

        // Restoring adds the old content as the newest version; nothing is lost.
        XCTAssertEqual(try store.restoreVolume("v", version: 1), 4)
        versions = try store.volumeVersions("v")
        XCTAssertEqual(versions.last?.digest, versions.first?.digest)
        XCTAssertEqual(try store.readAll(try store.volume("v").snapshot!), Array(contents[0].utf8))
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.volumeVersions("v").count, 4)
        for (i, c) in [contents[0], contents[1], contents[2], contents[0]].enumerated() {
            XCTAssertEqual(try store.readAll(try store.volumeVersion("v", i + 1)), Array(c.utf8), "version \(i + 1)")
        }
        try assertCountsConsistent(store)

        // Forgetting all but one earlier version frees "two"; "one" is still the current content.
        XCTAssertEqual(try store.forgetVolumeVersions("v", keep: 1), 2)
        XCTAssertEqual(try store.volumeVersions("v").map(\.number), [1, 2])
        let report = try GarbageCollector(store: store).collect()
        XCTAssertEqual(report.blobsFreed, 1, "only the blob of \"two\" was exclusive to the dropped versions")
        XCTAssertFalse(try store.contains(Array(contents[1].utf8).sha256))
        try assertCountsConsistent(store)
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)

        try store.removeVolume("v")
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.totals().blobs, 0)
    }

    /// No limit on versions: a thousand of them, each only its own bytes, the first still
    /// readable, and all freed with the volume.
    func testAThousandVersions() throws {
        let store = try makeStore(self)
        for i in 0..<1000 { try store.setVolumeSnapshot("v", try put(store, "version \(i)")) }
        let versions = try store.volumeVersions("v")
        XCTAssertEqual(versions.count, 1000)
        XCTAssertEqual(try store.readAll(versions[0].digest), Array("version 0".utf8))
        XCTAssertEqual(try store.readAll(try store.volume("v").snapshot!), Array("version 999".utf8))
        XCTAssertTrue(try StoreChecker(store: store).check().isHealthy)
        try store.removeVolume("v")
        _ = try GarbageCollector(store: store).collect()
        XCTAssertEqual(try store.totals().blobs, 0)
    }

    /// A volume an engine holds (mounted) is neither removed, pruned nor restored.
    func testHeldVolumesAreLeftAlone() throws {
        let store = try makeStore(self)
        try store.setVolumeSnapshot("v", try put(store, "a"))
        try store.setVolumeSnapshot("v", try put(store, "b"))
        try store.holdVolume("v", by: "docker-plugin")
        try store.holdVolume("v", by: "docker-plugin") // a retry counts once
        XCTAssertThrowsError(try store.removeVolume("v")) { XCTAssertTrue("\($0)".contains("mounted by docker-plugin"), "\($0)") }
        XCTAssertEqual(try store.pruneVolumes(), [])
        XCTAssertThrowsError(try store.restoreVolume("v", version: 1))
        try store.releaseVolume("v", by: "docker-plugin")
        XCTAssertEqual(try store.restoreVolume("v", version: 1), 3)
        XCTAssertEqual(try store.pruneVolumes(), ["v"])
    }

    /// Imports, restores, forgets and removals on three volumes while gc runs again and
    /// again on another thread: every version a volume lists reads back as what was
    /// recorded for it, and fsck agrees with every count. Each import goes the way engines
    /// store a version: an unpinned blob under a lease, then the volume's reference.
    func testVersionsSurviveGCRacingImportsRestoresAndForgets() throws {
        let store = try makeStore(self, config: StoreConfig(packSizeLimit: 1 << 20))
        let done = LockedFlag()
        let collector = Thread {
            while !done.value { _ = try? GarbageCollector(store: store, compactionThreshold: 0.1).collect() }
        }
        collector.start()
        let failures = LockedList()
        let group = DispatchGroup()
        for worker in 0..<3 {
            group.enter()
            Thread {
                defer { group.leave() }
                let name = "vol\(worker)"
                var random = TestRandom(seed: 8000 + UInt64(worker))
                let shared = random.bytes(200_000)
                var expected: [[UInt8]] = []
                do {
                    for step in 0..<60 {
                        switch random.next() % 8 {
                        case 0 where !expected.isEmpty:
                            let number = Int(random.next() % UInt64(expected.count)) + 1
                            let before = expected.count
                            if try store.restoreVolume(name, version: number) > before { expected.append(expected[number - 1]) }
                        case 1 where expected.count > 2:
                            let keep = Int(random.next() % 2)
                            try store.forgetVolumeVersions(name, keep: keep)
                            expected.removeFirst(expected.count - 1 - keep)
                        case 2 where step % 20 == 19:
                            try store.removeVolume(name)
                            expected = []
                        default:
                            let content = shared + random.bytes(Int(random.next() % 100_000) + 1)
                            try store.withLease("test import") { _ in
                                let session = try store.beginIngest()
                                try session.append(content)
                                let digest = try session.commit(mediaType: "application/x-tar", pin: false).digest
                                try store.setVolumeSnapshot(name, digest)
                            }
                            expected.append(content)
                        }
                    }
                    let versions = try store.volumeVersions(name)
                    guard versions.count == expected.count else { throw BlobStoreError(.corrupt, "\(name): \(versions.count) versions, expected \(expected.count)") }
                    for (version, content) in zip(versions, expected) where try store.readAll(version.digest, verify: true) != content {
                        throw BlobStoreError(.corrupt, "\(name) version \(version.number) reads back wrong")
                    }
                } catch {
                    failures.append("\(name): \(error)")
                }
            }.start()
        }
        group.wait()
        done.set()
        while collector.isExecuting { usleep(10_000) }
        XCTAssertEqual(failures.items, [])
        _ = try GarbageCollector(store: store).collect()
        try assertCountsConsistent(store)
        let check = try StoreChecker(store: store).check()
        XCTAssertTrue(check.isHealthy, "\(check)")
    }
}

private final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    func set() { lock.lock(); flag = true; lock.unlock() }
}

