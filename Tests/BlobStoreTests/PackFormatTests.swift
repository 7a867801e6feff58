import BlobStore
import XCTest

final class PackFormatTests: XCTestCase {
    func testPackHeaderRoundTripAndTamper() {
        var header = PackFormat.packHeader(id: 0xDEAD_BEEF, createdAt: 42)
        XCTAssertEqual(header.count, PackFormat.headerSize)
        XCTAssertEqual(header.withUnsafeBytes { PackFormat.parsePackHeader($0) }, 0xDEAD_BEEF)
        header[17] ^= 1
        XCTAssertNil(header.withUnsafeBytes { PackFormat.parsePackHeader($0) }, "a flipped bit fails the header CRC")
    }

    func testRecordHeaderRoundTripAndTamper() {
        let key = Array("chunk".utf8).sha256
        var raw = [UInt8](repeating: 0, count: PackFormat.recordHeaderSize)
        raw.withUnsafeMutableBytes {
            PackFormat.writeRecordHeader(into: $0.baseAddress!, key: key, flags: .zstd, rawSize: 65536, storedSize: 1234, checksum: 0xABCD)
        }
        let parsed = raw.withUnsafeBytes { PackFormat.parseRecordHeader($0.baseAddress!) }
        XCTAssertEqual(parsed, PackFormat.RecordHeader(key: key, flags: .zstd, rawSize: 65536, storedSize: 1234, checksum: 0xABCD))
        for i in [0, 4, 8, 40, 44, 48, 60] {
            var bad = raw
            bad[i] ^= 0x10
            XCTAssertNil(bad.withUnsafeBytes { PackFormat.parseRecordHeader($0.baseAddress!) }, "byte \(i)")
        }
    }

    func testFileNames() {
        XCTAssertEqual(PackFormat.fileName(for: 0xAB), "00000000000000ab.pack")
        XCTAssertEqual(PackFormat.id(fromFileName: "00000000000000ab.pack"), 0xAB)
        XCTAssertNil(PackFormat.id(fromFileName: "../etc/passwd"))
    }

    func testPacksRotateAtTheSizeLimit() throws {
        let store = try makeStore(self, config: StoreConfig(packSizeLimit: 1 << 20))
        var random = TestRandom(seed: 1200)
        let data = random.bytes(5 << 20)
        let digest = try store.put(data).digest
        let packs = try store.packUsage()
        XCTAssertGreaterThanOrEqual(packs.count, 5)
        XCTAssertEqual(try store.readAll(digest, verify: true), data)
        for (id, stats) in try store.allPackStats() {
            XCTAssertLessThanOrEqual(stats.liveBytes, 1 << 20, "pack \(id) respects the limit")
        }
    }
}
