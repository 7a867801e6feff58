/// Content-defined chunking: FastCDC's gear hash with normalized chunking.
///
/// A rolling "gear" fingerprint is updated per byte: `fp = (fp << 1) + GEAR[byte]`. Because of
/// the shift, bit 63 of `fp` depends on the last 64 bytes only, so testing the fingerprint's
/// *top* bits against zero decides a cut from a 64-byte window of content — identical content
/// cuts at identical places whatever precedes it (after a chunk boundary has resynchronised).
///
/// Normalized chunking (FastCDC, level 2): before the average size a cut needs two more zero
/// bits (`maskSmall`, rarer), after it two fewer (`maskLarge`, likelier). That pulls chunk
/// sizes towards the average and narrows their spread, which improves dedup at equal average.
/// The first `minSize` bytes of a chunk are skipped outright (never a cut there), which is
/// also where most of FastCDC's speed comes from.
///
/// The search is pure: no I/O, no allocation, a buffer in and a length out.
public struct Chunker: Sendable {
    public let parameters: ChunkingParameters
    private let maskSmall: UInt64
    private let maskLarge: UInt64

    public init(parameters: ChunkingParameters) {
        self.parameters = parameters
        let bits = UInt64(parameters.averageSize).trailingZeroBitCount
        maskSmall = Chunker.topBits(bits + 2)
        maskLarge = Chunker.topBits(max(bits - 2, 1))
    }

    private static func topBits(_ n: Int) -> UInt64 {
        n >= 64 ? ~0 : ~(~UInt64(0) >> UInt64(n))
    }

    /// The length of the next chunk at the start of `buffer`, or nil when the buffer holds no
    /// cut yet and more input may follow (`isFinal == false`). Give it at least `maxSize`
    /// bytes, or the final bytes of the stream, and it always answers.
    @inline(__always)
    public func nextChunkLength(in buffer: UnsafeRawBufferPointer, isFinal: Bool) -> Int? {
        let available = buffer.count
        if available == 0 { return nil }
        if available < parameters.maxSize && !isFinal {
            // A cut might still be found here, but only a full window decides it for sure.
            if let cut = scan(buffer, limit: available), cut < available { return cut }
            return nil
        }
        return scan(buffer, limit: min(available, parameters.maxSize))
    }

    /// Scans `buffer[0..<limit]`; returns the cut found, or `limit` when none.
    @inline(__always)
    private func scan(_ buffer: UnsafeRawBufferPointer, limit: Int) -> Int? {
        if limit <= parameters.minSize { return limit }
        let bytes = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let normal = min(parameters.averageSize, limit)
        var fp: UInt64 = 0
        var i = parameters.minSize
        return GearTable.values.withUnsafeBufferPointer { gear -> Int in
            let g = gear.baseAddress!
            while i < normal {
                fp = (fp &<< 1) &+ g[Int(bytes[i])]
                i &+= 1
                if fp & maskSmall == 0 { return i }
            }
            while i < limit {
                fp = (fp &<< 1) &+ g[Int(bytes[i])]
                i &+= 1
                if fp & maskLarge == 0 { return i }
            }
            return limit
        }
    }
}

/// The 256 random 64-bit gear values, from splitmix64 with a fixed seed. Part of the on-disk
/// format: changing a value changes every cut point.
enum GearTable {
    static let seed: UInt64 = 0x426C_6F62_5374_6F72 // "BlobStor"

    static let values: [UInt64] = {
        var state = seed
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()
}
