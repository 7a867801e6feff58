import BlobStore
import Foundation
import XCTest

final class PackScannerTests: XCTestCase {
    /// One record's bytes: header, then payload.
    private func record(_ payload: [UInt8]) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: PackFormat.recordHeaderSize)
        let checksum = payload.withUnsafeBytes { CRC32C.checksum($0) }
        header.withUnsafeMutableBytes {
            PackFormat.writeRecordHeader(into: $0.baseAddress!, key: payload.sha256, flags: [], rawSize: UInt32(payload.count),
                                         storedSize: UInt32(payload.count), checksum: checksum)
        }
        return header + payload
    }

    /// A writer killed mid-append leaves a record whose header promises more bytes than
    /// reached the file; the next writer of that pack appends right after them. The scanner
    /// must find that next record, not jump over it by the torn header's length: compaction
    /// and fsck see a pack only through the scanner.
    func testRecordAppendedAfterATornRecordIsFound() throws {
        let dir = try makeTemporaryDirectory(self)
        let backend = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        let id: UInt64 = 0x1234
        var random = TestRandom(seed: 77)
        let first = random.bytes(3000), torn = random.bytes(20_000), after = random.bytes(30_000), last = random.bytes(700)
        let tornRecord = record(torn)
        var bytes = PackFormat.packHeader(id: id, createdAt: 1) + record(first)
        bytes += tornRecord.prefix(PackFormat.recordHeaderSize + 1500) // the rest never reached the disk
        bytes += record(after) + record(last)
        FileManager.default.createFile(atPath: backend.path(for: id), contents: Data(bytes))

        var seen: [(Digest, Bool)] = []
        let summary = try PackScanner(backend: backend, id: id, size: UInt64(bytes.count)).scan { r in
            seen.append((r.header.key, r.payloadIntact))
        }
        let intact = seen.filter(\.1).map(\.0)
        XCTAssertEqual(intact, [first.sha256, after.sha256, last.sha256], "every whole record is found")
        XCTAssertEqual(seen.filter { !$0.1 }.map(\.0), [torn.sha256], "the torn one is reported, not trusted")
        XCTAssertEqual(summary.damagedRecords, 1)
    }

    /// A damaged record whose payload holds a whole pack record (a pack file stored as a
    /// blob): resyncing inside it may find that inner record, which is intact and harmless,
    /// and then goes on to the real next record.
    func testResyncThroughAPayloadThatContainsRecords() throws {
        let dir = try makeTemporaryDirectory(self)
        let backend = LocalPackBackend(directory: dir, sizeLimit: 1 << 20)
        let id: UInt64 = 0x5678
        var random = TestRandom(seed: 78)
        let inner = random.bytes(400), next = random.bytes(900)
        var damaged = record(random.bytes(100) + record(inner) + random.bytes(100))
        damaged[PackFormat.recordHeaderSize + 50] ^= 1 // payload no longer matches its CRC
        let bytes = PackFormat.packHeader(id: id, createdAt: 1) + damaged + record(next)
        FileManager.default.createFile(atPath: backend.path(for: id), contents: Data(bytes))
        var intact: [Digest] = []
        _ = try PackScanner(backend: backend, id: id, size: UInt64(bytes.count)).scan { r in
            if r.payloadIntact { intact.append(r.header.key) }
        }
        XCTAssertEqual(intact, [inner.sha256, next.sha256])
    }
}
