/// Where a chunk lives and how many blob recipes use it. Index value of `chunks[key]`.
public struct ChunkRecord: Sendable, Equatable {
    public var location: ChunkLocation
    /// Blob recipes that list this chunk (a recipe listing it twice counts twice).
    public var references: UInt64

    static let encodedSize = 8 + 8 + 4 + 4 + 1 + 4 + 4 + 8

    package func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: ChunkRecord.encodedSize)
        location.write(to: &w)
        w.u64(references)
        return w.bytes
    }

    package init(location: ChunkLocation, references: UInt64) {
        self.location = location
        self.references = references
    }

    package init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "chunk")
        location = try ChunkLocation(reading: &r)
        references = try r.u64()
    }
}

/// A record's place in a pack file and what is needed to read it back.
public struct ChunkLocation: Sendable, Equatable {
    public var packID: UInt64
    /// Offset of the record header in the pack file.
    public var offset: UInt64
    public var storedSize: UInt32
    public var rawSize: UInt32
    public var flags: ChunkFlags
    /// CRC32C of the stored payload.
    public var checksum: UInt32
    /// For a `.framed` record: bytes back to its frame's first record (see `PackFormat`).
    public var frameBack: UInt32

    public init(packID: UInt64, offset: UInt64, storedSize: UInt32, rawSize: UInt32, flags: ChunkFlags, checksum: UInt32, frameBack: UInt32 = 0) {
        self.packID = packID
        self.offset = offset
        self.storedSize = storedSize
        self.rawSize = rawSize
        self.flags = flags
        self.checksum = checksum
        self.frameBack = frameBack
    }

    /// The location of what a pack record's header describes, at `offset` of pack `packID`.
    package init(packID: UInt64, offset: UInt64, header: PackFormat.RecordHeader) {
        self.init(packID: packID, offset: offset, storedSize: header.storedSize, rawSize: header.rawSize, flags: header.flags,
                  checksum: header.checksum, frameBack: header.frameBack)
    }

    // `frameBack` follows only for framed records, so older index values read unchanged.
    func write(to w: inout BinaryWriter) {
        w.u64(packID)
        w.u64(offset)
        w.u32(storedSize)
        w.u32(rawSize)
        w.u8(flags.rawValue)
        w.u32(checksum)
        if flags.contains(.framed) { w.u32(frameBack) }
    }

    init(reading r: inout BinaryReader) throws {
        self.init(packID: try r.u64(), offset: try r.u64(), storedSize: try r.u32(), rawSize: try r.u32(),
                  flags: ChunkFlags(rawValue: try r.u8()), checksum: try r.u32())
        if flags.contains(.framed) { frameBack = try r.u32() }
    }

    /// Offset of the first record of this record's frame (its own offset when not framed).
    public var frameStart: UInt64 { offset - UInt64(frameBack) }

    /// Bytes the record takes in its pack, header included.
    public var recordSize: UInt64 { UInt64(PackFormat.recordHeaderSize) + UInt64(storedSize) }
}

public struct ChunkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The payload is a zstd frame; otherwise it is the raw bytes.
    public static let zstd = ChunkFlags(rawValue: 1)
    /// Rewritten by the settler at the store's strong level (or found not to gain from it):
    /// the settler passes it by from then on.
    public static let settled = ChunkFlags(rawValue: 2)
    /// The payload is one piece of a zstd frame spread over consecutive records (see
    /// `PackFormat`): decoding it needs the frame's earlier records.
    public static let framed = ChunkFlags(rawValue: 4)
}
