import Foundation

/// Rewrites stored chunks at a stronger zstd level, several consecutive chunks to a frame
/// (`PackFormat`): the settler's inner step.
///
/// A payload is decompressed and its bytes hashed against the chunk's key before anything
/// is written: a damaged chunk is passed on as it is (so `fsck` still finds it), never
/// recompressed into a record whose checksum would vouch for wrong bytes.
package final class ChunkRecompressor: @unchecked Sendable {
    package let level: Int32
    /// Raw bytes gathered into one frame before it is closed (`Settler.frameSize`).
    package let frameSize: Int
    /// On all cores (a `blobctl settle` run), or on the calling thread only (a server's
    /// settler, whose one thread runs at idle priority).
    package let parallel: Bool
    private let compressors: ContextPool<ZstdFrameCompressor>
    private let decompressors = ContextPool { ZstdDecompressor() }

    /// Checked before each frame: true abandons the pack under way (nothing of it is
    /// written yet), e.g. when a server shuts down.
    package let shouldStop: @Sendable () -> Bool

    package init(level: Int, frameSize: Int, parallel: Bool = true,
                 shouldStop: @escaping @Sendable () -> Bool = { false }) {
        self.level = Int32(level)
        self.frameSize = frameSize
        self.parallel = parallel
        self.shouldStop = shouldStop
        let level = Int32(level)
        compressors = ContextPool { ZstdFrameCompressor(level: level, frameBytes: frameSize) }
    }

    /// A record's stored form, as read from its pack (not framed).
    package struct Stored {
        package var key: Digest
        package var flags: ChunkFlags
        package var rawSize: UInt32
        package var payload: UnsafeRawBufferPointer

        package init(key: Digest, flags: ChunkFlags, rawSize: UInt32, payload: UnsafeRawBufferPointer) {
            self.key = key
            self.flags = flags
            self.rawSize = rawSize
            self.payload = payload
        }
    }

    /// The chunk's raw bytes; nil when the record is damaged (its bytes do not hash to its
    /// key) and must be copied unchanged.
    package func rawBytes(of record: Stored) -> [UInt8]? {
        let rawCount = Int(record.rawSize)
        var raw = [UInt8](repeating: 0, count: rawCount)
        let intact: Bool = raw.withUnsafeMutableBytes { target in
            if record.flags.contains(.zstd) {
                guard let n = try? decompressors.withElement({ try $0.decompress(record.payload, into: target) }), n == rawCount else { return false }
            } else {
                guard record.payload.count == rawCount else { return false }
                if rawCount > 0 { target.copyMemory(from: record.payload) }
            }
            return SHA256Hasher.hash(UnsafeRawBufferPointer(target)) == record.key
        }
        return intact ? raw : nil
    }

    /// The members as one frame, one piece each; nil when the frame does not save ~3% over
    /// the raw bytes (as at ingest), and they are better stored raw.
    package func frame(_ members: [[UInt8]]) -> [[UInt8]]? {
        let pieces: [[UInt8]]? = members.withPointers { pointers in compressors.withElement { $0.compress(pointers) } }
        guard let pieces else { return nil }
        let raw = members.reduce(0) { $0 + $1.count }
        let stored = pieces.reduce(0) { $0 + $1.count }
        return ZstdCompressor.saves(stored, of: raw) ? pieces : nil
    }
}

/// A settling run was told to stop (`ChunkRecompressor.shouldStop`) in the middle of a
/// pack: that pack is left as it was.
public struct SettlingStopped: Error {
    public init() {}
}
