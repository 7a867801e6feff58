/// Little-endian encoding of index values. Records are small fixed layouts, written and read
/// field by field, so the on-disk format is explicit and independent of Swift's layouts.
struct BinaryWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func digest(_ d: Digest) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: 32))
        bytes.withUnsafeMutableBytes { d.store(to: $0.baseAddress! + start) }
    }
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    /// A length-prefixed UTF-8 string.
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

/// Reads what `BinaryWriter` wrote; every read checks the bounds and throws on a short value.
struct BinaryReader {
    let buffer: UnsafeRawBufferPointer
    private(set) var offset = 0
    let what: String

    init(_ buffer: UnsafeRawBufferPointer, what: String) {
        self.buffer = buffer
        self.what = what
    }

    var remaining: Int { buffer.count - offset }

    private mutating func take(_ n: Int) throws -> Int {
        guard remaining >= n else {
            throw BlobStoreError(.corrupt, "index record \(what) is truncated (\(buffer.count) bytes)")
        }
        defer { offset += n }
        return offset
    }

    mutating func u8() throws -> UInt8 { buffer[try take(1)] }
    mutating func u32() throws -> UInt32 {
        UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self))
    }
    mutating func u64() throws -> UInt64 {
        UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self))
    }
    mutating func digest() throws -> Digest {
        Digest(bytes: buffer.baseAddress! + (try take(32)))
    }
    mutating func raw(_ n: Int) throws -> [UInt8] {
        let at = try take(n)
        return Array(UnsafeRawBufferPointer(rebasing: buffer[at..<at + n]))
    }
    mutating func string() throws -> String {
        let n = Int(try u32())
        return String(decoding: try raw(n), as: UTF8.self)
    }
}

extension Digest {
    /// The 32 raw bytes, as an index key.
    package var key: [UInt8] { bytes }
}

extension UInt64 {
    /// Big-endian bytes, so integer keys sort numerically in LMDB.
    package var bigEndianKey: [UInt8] { withUnsafeBytes(of: self.bigEndian) { Array($0) } }

    package init(bigEndianKey raw: UnsafeRawBufferPointer) {
        self = UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self))
    }
}
