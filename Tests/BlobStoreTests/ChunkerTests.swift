import BlobStore
import XCTest

final class ChunkerTests: XCTestCase {
    let parameters = ChunkingParameters.default

    /// Cuts a whole buffer into chunk lengths.
    func cut(_ data: [UInt8], _ chunker: Chunker) -> [Int] {
        data.withUnsafeBytes { raw in
            var lengths: [Int] = []
            var start = 0
            while start < raw.count {
                let n = chunker.nextChunkLength(in: UnsafeRawBufferPointer(rebasing: raw[start...]), isFinal: true)!
                lengths.append(n)
                start += n
            }
            return lengths
        }
    }

    /// Golden vectors: the cut points of fixed pseudo-random input are part of the store
    /// format. If this fails, chunking changed and existing stores would stop deduplicating.
    func testGoldenVectors() {
        var random = TestRandom(seed: 42)
        let data = random.bytes(4 << 20)
        let lengths = cut(data, Chunker(parameters: parameters))
        let fingerprint = SHA256Hasher.hash(lengths.flatMap { withUnsafeBytes(of: UInt32($0).littleEndian, Array.init) })
        XCTAssertEqual(lengths.count, GOLDEN_COUNT)
        XCTAssertEqual(Array(lengths.prefix(4)), GOLDEN_FIRST)
        XCTAssertEqual(fingerprint.hex, GOLDEN_FINGERPRINT)
    }

    func testSizesStayWithinBounds() {
        var random = TestRandom(seed: 7)
        let data = random.bytes(8 << 20)
        let lengths = cut(data, Chunker(parameters: parameters))
        XCTAssertEqual(lengths.reduce(0, +), data.count)
        for n in lengths.dropLast() {
            XCTAssertGreaterThanOrEqual(n, parameters.minSize)
            XCTAssertLessThanOrEqual(n, parameters.maxSize)
        }
        let mean = Double(data.count) / Double(lengths.count)
        // Normalized chunking keeps the mean near the target (min skip shifts it up a bit).
        XCTAssertGreaterThan(mean, Double(parameters.averageSize) * 0.6)
        XCTAssertLessThan(mean, Double(parameters.averageSize) * 1.6)
    }

    func testZerosCutAtMaxSize() {
        let data = [UInt8](repeating: 0, count: parameters.maxSize * 3 + 5)
        let lengths = cut(data, Chunker(parameters: parameters))
        XCTAssertEqual(lengths, [parameters.maxSize, parameters.maxSize, parameters.maxSize, 5])
    }

    /// An insertion early in the data changes only the chunks around it: the cut points
    /// resynchronise, which is what makes similar blobs share chunks.
    func testCutsResynchroniseAfterAnInsertion() {
        var random = TestRandom(seed: 9)
        let original = random.bytes(4 << 20)
        var edited = original
        edited.insert(contentsOf: random.bytes(100), at: 1_000_000)
        let chunker = Chunker(parameters: parameters)
        func chunks(_ data: [UInt8]) -> Set<Digest> {
            var start = 0
            var out = Set<Digest>()
            for n in cut(data, chunker) {
                out.insert(Array(data[start..<start + n]).sha256)
                start += n
            }
            return out
        }
        let a = chunks(original), b = chunks(edited)
        XCTAssertLessThanOrEqual(b.subtracting(a).count, 3, "an insertion touches at most a few chunks")
    }

    func testNotFinalWaitsForAFullWindow() {
        var random = TestRandom(seed: 11)
        let data = random.bytes(parameters.minSize - 1)
        let chunker = Chunker(parameters: parameters)
        data.withUnsafeBytes { raw in
            XCTAssertNil(chunker.nextChunkLength(in: raw, isFinal: false))
            XCTAssertEqual(chunker.nextChunkLength(in: raw, isFinal: true), data.count)
        }
    }

    func testParameterValidation() {
        XCTAssertThrowsError(try ChunkingParameters(minSize: 1024, averageSize: 3000, maxSize: 8192).validate())
        XCTAssertThrowsError(try ChunkingParameters(minSize: 8192, averageSize: 4096, maxSize: 16384).validate())
        XCTAssertNoThrow(try ChunkingParameters.default.validate())
    }
}

// Recorded from the chunker as released (format version 1); see testGoldenVectors.
private let GOLDEN_COUNT = 28
private let GOLDEN_FIRST = [136618, 134568, 162078, 73882]
private let GOLDEN_FINGERPRINT = "69ecd9174850c819493c2103209aa6080f25415b9351923cb8e3099eaf0c5878"
