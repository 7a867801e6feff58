internal import CCrypto

/// CRC32C (Castagnoli) of pack records: cheap enough to check on every read, so a flipped
/// byte on disk is caught before decompression. Full SHA-256 verification is optional.
public enum CRC32C {
    public static func checksum(_ buffer: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return seed }
        return blobstore_crc32c(seed, base, buffer.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
