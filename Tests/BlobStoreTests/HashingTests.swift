import BlobStore
import XCTest

final class HashingTests: XCTestCase {
    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256Hasher.hash(Array("abc".utf8)).hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256Hasher.hash([]), Digest.empty)
    }

    func testIncrementalEqualsOneShot() {
        var random = TestRandom(seed: 1)
        let data = random.bytes(100_003)
        var h = SHA256Hasher()
        h.update(Array(data[..<7]))
        h.update(Array(data[7..<65_536]))
        h.update(Array(data[65_536...]))
        XCTAssertEqual(h.finalize(), data.sha256)
    }

    func testSavedStateContinuesTheSameDigest() throws {
        var random = TestRandom(seed: 2)
        let data = random.bytes(10_000)
        var h = SHA256Hasher()
        h.update(Array(data[..<3333]))
        var restored = try XCTUnwrap(SHA256Hasher(state: h.state))
        restored.update(Array(data[3333...]))
        XCTAssertEqual(restored.finalize(), data.sha256)
        XCTAssertNil(SHA256Hasher(state: [1, 2, 3]))
    }

    func testDigestParsing() throws {
        let text = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        let d = try XCTUnwrap(Digest(parsing: text))
        XCTAssertEqual(d.description, text)
        XCTAssertEqual(Digest(bytes: d.bytes), d)
        XCTAssertNil(Digest(parsing: "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"), "uppercase is not canonical")
        XCTAssertNil(Digest(parsing: "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        XCTAssertNil(Digest(parsing: "sha256:ba78"))
        XCTAssertNil(Digest(parsing: "sha256:../../etc/passwd"))
    }

    func testCRC32CKnownVector() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        // Odd lengths exercise the byte-wise tail.
        var random = TestRandom(seed: 3)
        let data = random.bytes(1001)
        let whole = CRC32C.checksum(data)
        let split = data.withUnsafeBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[500...]), seed: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<500])))
        }
        XCTAssertEqual(whole, split)
    }
}
