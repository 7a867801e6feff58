/// A SHA-256 digest held inline as four big-endian words: hashable, comparable and free of
/// heap allocation, so it can serve as a chunk key in hot loops.
///
/// The same type names blobs (`sha256:<hex>`, the OCI form) and chunks (the SHA-256 of the
/// chunk's raw bytes).
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let byteCount = 32
    public static let algorithm = "sha256"

    /// The digest of zero bytes.
    public static let empty = Digest(hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")!

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// Reads 32 bytes at `pointer`.
    public init(bytes pointer: UnsafeRawPointer) {
        w0 = UInt64(bigEndian: pointer.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        w1 = UInt64(bigEndian: pointer.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        w2 = UInt64(bigEndian: pointer.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        w3 = UInt64(bigEndian: pointer.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Writes the 32 raw bytes at `pointer`.
    public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
        pointer.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
        pointer.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
        pointer.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
    }

    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { buffer, count in
            store(to: UnsafeMutableRawPointer(buffer.baseAddress!))
            count = 32
        }
    }

    /// Parses 64 lowercase hex digits.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, c) in utf8.enumerated() {
            let v: UInt64
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = UInt64(c - UInt8(ascii: "a") + 10)
            default: return nil
            }
            words[i / 16] = words[i / 16] << 4 | v
        }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    /// Parses the OCI form `sha256:<64 lowercase hex>`; a bare hex string is accepted too.
    public init?(parsing text: some StringProtocol) {
        let s = String(text)
        if s.hasPrefix("sha256:") {
            self.init(hex: s.dropFirst(7))
        } else if s.count == 64 {
            self.init(hex: s)
        } else {
            return nil
        }
    }

    public var hex: String {
        var out = [UInt8](repeating: 0, count: 64)
        let digits = Array("0123456789abcdef".utf8)
        for (i, w) in [w0, w1, w2, w3].enumerated() {
            for j in 0..<16 {
                out[i * 16 + j] = digits[Int((w >> UInt64(60 - 4 * j)) & 0xf)]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The OCI form, `sha256:<hex>`.
    public var description: String { "sha256:" + hex }

    /// The first 12 hex digits, for terminal output.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}
