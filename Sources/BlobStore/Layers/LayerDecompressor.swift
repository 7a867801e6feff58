internal import CZlib
internal import CZstd

/// Turns a gzip- or zstd-compressed layer blob into its plain tar, streamed into an ingest:
/// the tar's chunks then deduplicate against every other layer's, whatever compression
/// each was pushed with.
enum LayerCompression {
    case none, gzip, zstd

    static func detect(_ store: Store, _ digest: Digest) throws -> LayerCompression {
        var head: [UInt8] = []
        let size = try store.stat(digest).size
        try store.read(digest, range: 0..<min(4, size)) { head.append(contentsOf: $0) }
        if head.starts(with: [0x1F, 0x8B]) { return .gzip }
        if head.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return .zstd }
        return .none
    }

    /// Decompresses blob `digest` into `session`, throwing `limitExceeded` (with nothing past
    /// the limit appended) once the output passes `limits`.
    func decompress(_ store: Store, _ digest: Digest, into session: IngestSession, limits: DecompressionLimits) throws {
        let source = try BlobByteSource(store: store, digest: digest)
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
        defer { input.deallocate(); output.deallocate() }
        let configPath = store.root + "/config.json"
        var produced: UInt64 = 0
        // Each piece of output is at most `output.count` bytes, so the work done past a
        // limit before it is noticed is bounded too (zstd's default window limit, 128 MiB,
        // bounds its memory whatever a frame asks for).
        func emit(_ count: Int) throws {
            produced += UInt64(count)
            try limits.check(produced: produced, compressedSize: source.size, layer: digest, configPath: configPath)
            try session.append(UnsafeRawBufferPointer(rebasing: output[..<count]))
        }
        switch self {
        case .none:
            while true {
                let n = try source.read(into: output)
                if n == 0 { return }
                try session.append(UnsafeRawBufferPointer(rebasing: output[..<n]))
            }
        case .gzip:
            var stream = z_stream()
            guard blobstore_inflate_init_gzip(&stream) == Z_OK else { throw BlobStoreError(.compression, "zlib init failed") }
            defer { inflateEnd(&stream) }
            var ended = false // the last member's end was seen
            var outputFilled = false // the last call filled the output: zlib may hold more
            while true {
                if stream.avail_in == 0 && !outputFilled {
                    let n = try source.read(into: input)
                    if n == 0 { break }
                    stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = uInt(n)
                }
                if ended {
                    // More bytes after a member: concatenated gzip members are legal.
                    inflateReset(&stream)
                    ended = false
                }
                stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(output.count)
                let rc = inflate(&stream, Z_NO_FLUSH)
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                    throw BlobStoreError(.corrupt, "layer \(digest): gzip data is damaged (zlib error \(rc))")
                }
                let count = output.count - Int(stream.avail_out)
                if count > 0 { try emit(count) }
                // A member's end comes with all its output written; otherwise a full output
                // may mean zlib holds more.
                outputFilled = stream.avail_out == 0 && rc != Z_STREAM_END
                if rc == Z_STREAM_END { ended = true }
                // No input left and nothing held back: a read (possibly of nothing) is next.
                if rc == Z_BUF_ERROR && stream.avail_in == 0 { outputFilled = false }
            }
            guard ended else { throw BlobStoreError(.corrupt, "layer \(digest): gzip stream is truncated") }
        case .zstd:
            guard let ctx = ZSTD_createDStream() else { throw BlobStoreError(.compression, "zstd init failed") }
            defer { ZSTD_freeDStream(ctx) }
            var frameOpen = false // inside a frame: its end (and checksum) not yet seen
            while true {
                let n = try source.read(into: input)
                if n == 0 { break }
                var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: n, pos: 0)
                while true {
                    var outBuf = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                    let rc = ZSTD_decompressStream(ctx, &outBuf, &inBuf)
                    if ZSTD_isError(rc) != 0 { throw BlobStoreError(.corrupt, "layer \(digest): zstd data is damaged") }
                    if outBuf.pos > 0 { try emit(outBuf.pos) }
                    frameOpen = rc != 0
                    // A full output means zstd may hold more of what it already read: call
                    // again before reading on, or the tail of the input's last block is lost.
                    if inBuf.pos == inBuf.size && outBuf.pos < outBuf.size { break }
                }
            }
            guard !frameOpen else { throw BlobStoreError(.corrupt, "layer \(digest): zstd stream is truncated") }
        }
    }
}
