/// A fast, seedable generator for benchmark content. SystemRandomNumberGenerator would
/// spend more time than the store on a gigabyte of blobs; a seed also lets `files` write
/// exactly the sizes `gc` stores, so restic and borg see comparable data.
struct BenchRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// SplitMix64: one add, three multiplies/xors per word, passes BigCrush.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Overwrites `buffer` with random bytes, eight at a time.
    mutating func fill(_ buffer: inout [UInt8]) {
        buffer.withUnsafeMutableBytes { raw in
            let words = raw.count / 8
            for i in 0..<words { raw.storeBytes(of: next(), toByteOffset: i * 8, as: UInt64.self) }
            var tail = next()
            for i in (words * 8)..<raw.count {
                raw[i] = UInt8(truncatingIfNeeded: tail)
                tail >>= 8
            }
        }
    }

    /// `count` random bytes.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: count)
        fill(&b)
        return b
    }
}

/// The content of fill blob `i` of a run: its own generator, so workers can produce any
/// blob in any order and `files` reproduces the same bytes.
enum FillBlob {
    static let minSize = 4 << 10
    static let maxSize = 16 << 10

    static func generator(_ i: Int, seed: UInt64) -> BenchRandom {
        var g = BenchRandom(seed: seed &+ UInt64(i) &* 0x2545_F491_4F6C_DD1D)
        _ = g.next()
        return g
    }

    /// Writes blob `i` into `buffer` (resized to the blob's size).
    static func make(_ i: Int, seed: UInt64, into buffer: inout [UInt8]) {
        var g = generator(i, seed: seed)
        let size = Int.random(in: minSize...maxSize, using: &g)
        if buffer.count != size { buffer = [UInt8](repeating: 0, count: size) }
        g.fill(&buffer)
    }
}
