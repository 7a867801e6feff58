extension Store {
    /// A framed chunk as a record of its own, as ingest would write it (the store's level,
    /// raw unless that saves ~3%): what compaction copies when the rest of its frame is
    /// dead. Its bytes are hashed against the key first, so the new record's CRC never
    /// vouches for damaged bytes.
    package func unframe(_ key: Digest, at location: ChunkLocation) throws -> (flags: ChunkFlags, payload: [UInt8]) {
        var raw = [UInt8](repeating: 0, count: Int(location.rawSize))
        try raw.withUnsafeMutableBytes { try readChunk(key, at: location, into: $0, verify: true) }
        guard config.compressionLevel != 0, !raw.isEmpty else { return ([], raw) }
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(raw.count))
        let written = raw.withUnsafeBytes { source in
            frame.withUnsafeMutableBytes { destination in compressors.withElement { $0.compress(source, into: destination) } }
        }
        guard let written, written < raw.count - raw.count / 32 else { return ([], raw) }
        frame.removeSubrange(written...)
        return (.zstd, frame)
    }
}
