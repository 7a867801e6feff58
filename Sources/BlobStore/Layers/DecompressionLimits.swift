/// How far a compressed layer may expand when it is decompressed to be indexed: a cap on the
/// plain tar's size, and on its size as a multiple of the compressed blob's. A layer is
/// pushed by whoever can push, and a few MiB of gzip or zstd can inflate to terabytes (a
/// "decompression bomb"); with these checks it is refused after bounded work, instead of
/// filling the disk and the CPU of every process that indexes it (the FUSE mount does so
/// for each image it shows).
///
/// Kept in the store's `config.json` as `layerDecompression`; each field is optional there,
/// and the store reads it at open.
public struct DecompressionLimits: Codable, Sendable, Equatable {
    /// The plain tar may not pass this many bytes; 0 for no cap. Default 64 GiB: past the
    /// largest real layers (ML images' few tens of GiB), far below a bomb's terabytes.
    public var maxBytes: UInt64
    /// Once past `ratioFloorBytes`, the plain tar may not pass this multiple of the
    /// compressed size; 0 for no cap. Default 100: real layers inflate 2–10×.
    public var maxRatio: UInt64
    /// Up to this many decompressed bytes the ratio is not checked, so a small layer of zeros
    /// or text (which can compress 1000:1) is always fine. Default 64 MiB.
    public var ratioFloorBytes: UInt64

    public static let `default` = DecompressionLimits(maxBytes: 64 << 30, maxRatio: 100, ratioFloorBytes: 64 << 20)

    public init(maxBytes: UInt64, maxRatio: UInt64, ratioFloorBytes: UInt64) {
        self.maxBytes = maxBytes
        self.maxRatio = maxRatio
        self.ratioFloorBytes = ratioFloorBytes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DecompressionLimits.default
        maxBytes = try c.decodeIfPresent(UInt64.self, forKey: .maxBytes) ?? d.maxBytes
        maxRatio = try c.decodeIfPresent(UInt64.self, forKey: .maxRatio) ?? d.maxRatio
        ratioFloorBytes = try c.decodeIfPresent(UInt64.self, forKey: .ratioFloorBytes) ?? d.ratioFloorBytes
    }

    /// Throws `limitExceeded` once `produced` decompressed bytes of `layer` (`compressedSize`
    /// bytes as pushed) pass a limit. Called before each piece is stored, so nothing past
    /// a limit is ever written.
    func check(produced: UInt64, compressedSize: UInt64, layer: Digest, configPath: String) throws {
        if maxBytes > 0 && produced > maxBytes {
            throw BlobStoreError(.limitExceeded, "layer \(layer) decompresses to more than \(Self.size(maxBytes)), the limit set by layerDecompression.maxBytes in \(configPath); nothing was indexed. If the layer is trusted, raise the limit there (0 turns it off)")
        }
        let (allowed, overflow) = compressedSize.multipliedReportingOverflow(by: maxRatio)
        if maxRatio > 0 && !overflow && produced > ratioFloorBytes && produced > allowed {
            throw BlobStoreError(.limitExceeded, "layer \(layer) decompresses to more than \(maxRatio) times its compressed size of \(Self.size(compressedSize)) (stopped at \(Self.size(produced))), the limit set by layerDecompression.maxRatio in \(configPath) (checked past layerDecompression.ratioFloorBytes, \(Self.size(ratioFloorBytes))); nothing was indexed. If the layer is trusted, raise the limit there (0 turns it off)")
        }
    }

    /// "64 MiB", "1.5 GiB": sizes in error messages a person reads.
    static func size(_ bytes: UInt64) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes) bytes" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[unit])" : "\(rounded) \(units[unit])"
    }
}
