import BlobStore
import XCTest

/// Settled frames: one zstd frame over consecutive chunks, one piece per chunk.
final class ZstdFrameCoderTests: XCTestCase {
    func members(seed: UInt64) -> [[UInt8]] {
        var random = TestRandom(seed: seed)
        return (0..<8).map { _ in random.text(64 << 10) }
    }

    func testPiecesDecodeBackWholeOrByPrefix() throws {
        let members = members(seed: 9900)
        let compressor = ZstdFrameCompressor(level: 19, frameBytes: 512 << 10)
        let pieces = try XCTUnwrap(members.withPointers { compressor.compress($0) })
        XCTAssertEqual(pieces.count, members.count)
        XCTAssertLessThan(pieces.reduce(0) { $0 + $1.count }, members.reduce(0) { $0 + $1.count } / 2)

        let decoder = ZstdFrameDecoder()
        for prefix in [1, 3, members.count] {
            var out = [UInt8](repeating: 0, count: members[..<prefix].reduce(0) { $0 + $1.count })
            try Array(pieces[..<prefix]).withPointers { input in
                try out.withUnsafeMutableBytes { try decoder.decodePrefix(input, into: $0) }
            }
            XCTAssertEqual(out, Array(members[..<prefix].joined()), "first \(prefix) pieces")
        }
    }

    /// zstd sizes its tables for the frame size it is told: a streamed frame is otherwise of
    /// unknown size, and a level-19 context would take 83 MiB (the settler runs one per
    /// core, and `serve` keeps them).
    func testAStrongContextIsSizedForItsFrames() throws {
        let compressor = ZstdFrameCompressor(level: 19, frameBytes: 512 << 10)
        _ = members(seed: 9901).withPointers { compressor.compress($0) }
        XCTAssertLessThan(compressor.memoryBytes, 24 << 20, "\(compressor.memoryBytes >> 20) MiB")
    }
}
