internal import CZstd

/// Compresses several chunks as one zstd frame, flushed at the end of each chunk, so the
/// frame splits into one piece per chunk (the records of a settled frame, `PackFormat`):
/// every chunk is compressed with the chunks before it as context, and a reader decoding
/// the pieces in order has a chunk's bytes complete once its own piece is decoded.
package final class ZstdFrameCompressor {
    private let context: OpaquePointer

    /// `windowLog` bounds how far back matches reach, and so the window a reader allocates:
    /// a frame holds well under 2 MiB. `frameBytes`, the raw size frames are cut at, sizes
    /// zstd's match tables: a streamed frame's size is unknown to zstd, which would size
    /// them for any input (83 MiB a context at level 19), where tables for 512 KiB frames
    /// take 10 MiB and compress to the same bytes, faster (fewer cache misses).
    package init(level: Int32, windowLog: Int32 = 21, frameBytes: Int) {
        context = ZSTD_createCCtx()
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(context, ZSTD_c_windowLog, windowLog)
        // ZSTD_c_srcSizeHint (experimental in zstd.h, in the library since 1.4.4).
        ZSTD_CCtx_setParameter(context, ZSTD_c_experimentalParam7, Int32(clamping: frameBytes))
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)
        ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Bytes the context holds (tables, window, buffers).
    package var memoryBytes: Int { ZSTD_sizeof_CCtx(context) }

    /// One piece per member, in order; nil if zstd fails.
    package func compress(_ members: [UnsafeRawBufferPointer]) -> [[UInt8]]? {
        ZSTD_CCtx_reset(context, ZSTD_reset_session_only)
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(members.count)
        for (i, member) in members.enumerated() {
            let mode = i == members.count - 1 ? ZSTD_e_end : ZSTD_e_flush
            var piece: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: ZSTD_compressBound(member.count) + 64)
            var input = ZSTD_inBuffer(src: member.baseAddress, size: member.count, pos: 0)
            while true {
                let (remaining, produced): (Int, Int) = chunk.withUnsafeMutableBytes { out in
                    var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let r = ZSTD_compressStream2(context, &output, &input, mode)
                    return (r, output.pos)
                }
                if ZSTD_isError(remaining) != 0 { return nil }
                piece.append(contentsOf: chunk[..<produced])
                if remaining == 0 && input.pos == input.size { break }
            }
            pieces.append(piece)
        }
        return pieces
    }
}

/// Decodes frames written by `ZstdFrameCompressor`, or the start of one.
package final class ZstdFrameDecoder {
    private let context: OpaquePointer

    package init() {
        context = ZSTD_createDCtx()
        // ZSTD_d_stableOutBuffer (experimental in zstd.h, stable in the library since 1.4.4):
        // `decodePrefix` gives one buffer for the whole frame start, so zstd decodes straight
        // into it, as it does for a whole frame, instead of through its window buffer and a
        // copy (a third slower on settled packs).
        ZSTD_DCtx_setParameter(context, ZSTD_d_experimentalParam2, 1)
    }
    deinit { ZSTD_freeDCtx(context) }

    /// Starts a new frame.
    func reset() { ZSTD_DCtx_reset(context, ZSTD_reset_session_only) }

    /// Decodes the start of a frame — its first pieces, in order — into `destination`,
    /// which must be exactly their raw size: one pass into one buffer, as fast as decoding
    /// a whole frame.
    package func decodePrefix(_ pieces: [UnsafeRawBufferPointer], into destination: UnsafeMutableRawBufferPointer) throws {
        reset()
        var output = ZSTD_outBuffer(dst: destination.baseAddress, size: destination.count, pos: 0)
        var consumed = 0, total = 0
        for piece in pieces {
            total += piece.count
            var input = ZSTD_inBuffer(src: piece.baseAddress, size: piece.count, pos: 0)
            while input.pos < input.size || output.pos < output.size {
                let before = (input.pos, output.pos)
                let r = ZSTD_decompressStream(context, &output, &input)
                if ZSTD_isError(r) != 0 {
                    throw BlobStoreError(.corrupt, "zstd: \(String(cString: ZSTD_getErrorName(r)))")
                }
                if (input.pos, output.pos) == before { break }
            }
            consumed += input.pos
        }
        guard consumed == total, output.pos == output.size else {
            throw BlobStoreError(.corrupt, "zstd: frame decoded to \(output.pos) bytes from \(consumed) of \(total), expected \(destination.count)")
        }
    }
}
