internal import CZstd

/// A zstd compression context configured once for a level. Contexts are costly to create
/// and hold their tables between calls, so each worker reuses one (see `ContextPool`).
final class ZstdCompressor {
    private let context: OpaquePointer
    let level: Int32

    init(level: Int32) {
        context = ZSTD_createCCtx()
        self.level = level
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        // The pack record carries the raw size and a CRC; the frame needs neither.
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)
        ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Worst-case compressed size of `count` bytes.
    static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Whether `compressed` bytes are worth keeping over `raw` raw ones: they must save at
    /// least ~3% (1/32), else the chunk is stored raw and reads skip zstd.
    static func saves(_ compressed: Int, of raw: Int) -> Bool { compressed < raw - raw / 32 }

    /// Compresses `source` into `destination`; returns the compressed length, or nil when it
    /// does not fit (the caller then stores the chunk raw).
    func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let written = ZSTD_compress2(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        if ZSTD_isError(written) != 0 { return nil }
        return written
    }
}

/// A zstd decompression context.
final class ZstdDecompressor {
    private let context: OpaquePointer

    init() { context = ZSTD_createDCtx() }
    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses a whole frame; the destination must be exactly the raw size.
    func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        if ZSTD_isError(n) != 0 {
            throw BlobStoreError(.corrupt, "zstd: \(String(cString: ZSTD_getErrorName(n)))")
        }
        return n
    }
}
