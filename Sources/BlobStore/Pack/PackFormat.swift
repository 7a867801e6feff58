/// The pack file format. A pack is a header followed by self-describing records, appended
/// and never rewritten:
///
///     pack header (64 bytes)
///     +---------+---------+----------+---------+---------+----------------+
///     | "BLOBPACK" | version u32 | 0 u32 | pack id u64 | created u64 | 0... | crc u32 |
///     +---------+---------+----------+---------+---------+----------------+
///     record header (64 bytes), then `storedSize` payload bytes
///     +----------+-------+-----+-----------+-------------+------------+-------------+-----+------------+
///     | "BSR1" | flags u8 | 0 0 0 | key (32) | rawSize u32 | storedSize u32 | payload crc u32 | frameBack u32 | 0 u32 | header crc u32 |
///     +----------+-------+-----+-----------+-------------+------------+-------------+---------------+-------+------------+
///
/// All integers little-endian; CRCs are CRC32C. A record names its chunk and carries both
/// checksums, so the index can be rebuilt from packs alone, and a scan can resynchronise
/// after a torn tail by looking for the next record whose header CRC holds.
///
/// Settled chunks are stored as *frames*: consecutive records flagged `.framed` whose
/// payloads, read in order, form one zstd frame (the compressor flushed at each chunk's
/// end, so a chunk's bytes are out once its own payload is decoded). `frameBack` is the
/// distance from a member's record back to the frame's first record (0 for the first):
/// reading a member decodes the frame from its start up to that member. A frame never
/// spans two packs. Compression then sees ~512 KiB of context instead of one chunk.
public enum PackFormat {
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let recordHeaderSize = 64
    static let packMagic: [UInt8] = Array("BLOBPACK".utf8)
    static let recordMagic: UInt32 = 0x3152_5342 // "BSR1"

    package static func packHeader(id: UInt64, createdAt: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.withUnsafeMutableBytes { raw in
            packMagic.withUnsafeBytes { raw.copyMemory(from: $0) }
            raw.storeBytes(of: version.littleEndian, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: id.littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: createdAt.littleEndian, toByteOffset: 24, as: UInt64.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<60]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: 60, as: UInt32.self)
        }
        return bytes
    }

    /// Checks a pack header; returns the pack id it names.
    package static func parsePackHeader(_ raw: UnsafeRawBufferPointer) -> UInt64? {
        guard raw.count >= headerSize,
              raw.prefix(8).elementsEqual(packMagic),
              UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == version,
              CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<60])) ==
                UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 60, as: UInt32.self))
        else { return nil }
        return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
    }

    package static func writeRecordHeader(into raw: UnsafeMutableRawPointer, key: Digest, flags: ChunkFlags, rawSize: UInt32, storedSize: UInt32, checksum: UInt32,
                                          frameBack: UInt32 = 0) {
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: recordHeaderSize)
        raw.storeBytes(of: recordMagic.littleEndian, toByteOffset: 0, as: UInt32.self)
        raw.storeBytes(of: flags.rawValue, toByteOffset: 4, as: UInt8.self)
        key.store(to: raw + 8)
        raw.storeBytes(of: rawSize.littleEndian, toByteOffset: 40, as: UInt32.self)
        raw.storeBytes(of: storedSize.littleEndian, toByteOffset: 44, as: UInt32.self)
        raw.storeBytes(of: checksum.littleEndian, toByteOffset: 48, as: UInt32.self)
        raw.storeBytes(of: frameBack.littleEndian, toByteOffset: 52, as: UInt32.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: raw, count: 60))
        raw.storeBytes(of: crc.littleEndian, toByteOffset: 60, as: UInt32.self)
    }

    /// A decoded record header.
    public struct RecordHeader: Sendable, Equatable {
        public var key: Digest
        public var flags: ChunkFlags
        public var rawSize: UInt32
        public var storedSize: UInt32
        public var checksum: UInt32
        /// For a `.framed` record: bytes back to its frame's first record.
        public var frameBack: UInt32

        public init(key: Digest, flags: ChunkFlags, rawSize: UInt32, storedSize: UInt32, checksum: UInt32, frameBack: UInt32 = 0) {
            self.key = key
            self.flags = flags
            self.rawSize = rawSize
            self.storedSize = storedSize
            self.checksum = checksum
            self.frameBack = frameBack
        }
    }

    /// Decodes a record header; nil when the magic or its CRC does not hold.
    package static func parseRecordHeader(_ raw: UnsafeRawPointer) -> RecordHeader? {
        guard UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == recordMagic else { return nil }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: raw, count: 60))
        guard crc == UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 60, as: UInt32.self)) else { return nil }
        return RecordHeader(
            key: Digest(bytes: raw + 8),
            flags: ChunkFlags(rawValue: raw.load(fromByteOffset: 4, as: UInt8.self)),
            rawSize: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 40, as: UInt32.self)),
            storedSize: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 44, as: UInt32.self)),
            checksum: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 48, as: UInt32.self)),
            frameBack: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 52, as: UInt32.self))
        )
    }

    public static func fileName(for id: UInt64) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ".pack"
    }

    public static func id(fromFileName name: String) -> UInt64? {
        guard name.hasSuffix(".pack"), name.count == 21 else { return nil }
        return UInt64(name.prefix(16), radix: 16)
    }
}
