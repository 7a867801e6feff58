import Foundation

/// Rewrites stored chunk payloads at a stronger zstd level: the settler's inner step.
///
/// A payload is decompressed and its bytes hashed against the chunk's key before anything
/// is written: a damaged chunk is passed on as it is (so `fsck` still finds it), never
/// recompressed into a record whose checksum would vouch for wrong bytes. The result is the
/// smallest of the new frame, the old payload and the raw bytes, flagged `.settled`.
package final class ChunkRecompressor: @unchecked Sendable {
    package let level: Int32
    /// On all cores (a `blobctl settle` run), or on the calling thread only (a server's
    /// settler, whose one thread runs at idle priority).
    package let parallel: Bool
    private let compressors: ContextPool<ZstdCompressor>
    private let decompressors = ContextPool { ZstdDecompressor() }

    /// Checked before each chunk: true abandons the pack under way (nothing of it is
    /// written yet), e.g. when a server shuts down.
    package let shouldStop: @Sendable () -> Bool

    package init(level: Int, parallel: Bool = true, shouldStop: @escaping @Sendable () -> Bool = { false }) {
        self.level = Int32(level)
        self.parallel = parallel
        self.shouldStop = shouldStop
        let level = Int32(level)
        compressors = ContextPool { ZstdCompressor(level: level) }
    }

    /// A record's stored form, as read from its pack.
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

    /// The settled form of `record`: new flags and payload bytes; nil when the record is
    /// damaged (its bytes do not hash to its key) and must be copied unchanged.
    package func settle(_ record: Stored) -> (flags: ChunkFlags, payload: [UInt8])? {
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
        guard intact else { return nil }
        var best: (flags: ChunkFlags, payload: [UInt8]) = (record.flags.union(.settled), Array(record.payload))
        if rawCount > 0 {
            var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(rawCount))
            let written = raw.withUnsafeBytes { source in
                frame.withUnsafeMutableBytes { destination in compressors.withElement { $0.compress(source, into: destination) } }
            }
            if let written, written < best.payload.count {
                frame.removeSubrange(written...)
                best = ([.zstd, .settled], frame)
            }
        }
        // Compression must save at least ~3% over the raw bytes, as at ingest.
        if best.flags.contains(.zstd), best.payload.count >= rawCount - rawCount / 32 {
            best = ([.settled], raw)
        }
        return best
    }
}

/// A settling run was told to stop (`ChunkRecompressor.shouldStop`) in the middle of a
/// pack: that pack is left as it was.
public struct SettlingStopped: Error {
    public init() {}
}
