/// The 512-byte ustar header block, and the PAX extended-header records that extend it.
///
///     offset  size  field          offset  size  field
///          0   100  name              257     6  magic ("ustar\0", GNU "ustar  \0")
///        100     8  mode              263     2  version
///        108     8  uid               265    32  uname
///        116     8  gid               297    32  gname
///        124    12  size              329     8  devmajor
///        136    12  mtime             337     8  devminor
///        148     8  chksum            345   155  prefix (ustar only)
///        156     1  typeflag          500    12  padding
///        157   100  linkname
///
/// Numbers are octal text, or GNU base-256 (high bit of the first byte set) when too big.
/// Text fields are bytes up to the first NUL; names are taken as UTF-8.
package struct TarHeader: Equatable, Sendable {
    package static let blockSize = 512

    /// The name, with the ustar prefix joined on.
    package var name: String
    package var mode: UInt32
    package var uid: Int64
    package var gid: Int64
    package var size: Int64
    package var mtime: Int64
    package var typeflag: UInt8
    package var linkname: String
    package var uname: String
    package var gname: String
    package var devMajor: Int64
    package var devMinor: Int64

    package init(name: String, mode: UInt32, uid: Int64, gid: Int64, size: Int64, mtime: Int64,
                 typeflag: UInt8, linkname: String = "", uname: String = "", gname: String = "",
                 devMajor: Int64 = 0, devMinor: Int64 = 0) {
        self.name = name
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.typeflag = typeflag
        self.linkname = linkname
        self.uname = uname
        self.gname = gname
        self.devMajor = devMajor
        self.devMinor = devMinor
    }

    // Field offsets and widths.
    static let nameField = (0, 100), modeField = (100, 8), uidField = (108, 8), gidField = (116, 8)
    static let sizeField = (124, 12), mtimeField = (136, 12), checksumField = (148, 8)
    static let typeflagOffset = 156, linknameField = (157, 100), magicField = (257, 8)
    static let unameField = (265, 32), gnameField = (297, 32), devMajorField = (329, 8)
    static let devMinorField = (337, 8), prefixField = (345, 155)
    static let ustarMagic: [UInt8] = Array("ustar\u{0}00".utf8)

    // MARK: Parsing

    /// Whether the block is all zeros (the end-of-archive marker).
    package static func isZeroBlock(_ block: UnsafeRawBufferPointer) -> Bool {
        var acc: UInt64 = 0
        for i in stride(from: 0, to: blockSize, by: 8) {
            acc |= block.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        }
        return acc == 0
    }

    /// Whether the stored checksum matches the block. Old writers summed signed bytes, so
    /// either sum is accepted.
    package static func checksumMatches(_ block: UnsafeRawBufferPointer) -> Bool {
        guard let stored = parseNumber(block, checksumField) else { return false }
        let (unsigned, signed) = checksums(block)
        return stored == unsigned || stored == signed
    }

    /// The unsigned and signed byte sums with the checksum field counted as spaces.
    static func checksums(_ block: UnsafeRawBufferPointer) -> (Int64, Int64) {
        var unsigned: Int64 = 0, signed: Int64 = 0
        for i in 0..<blockSize {
            let byte = (148..<156).contains(i) ? UInt8(ascii: " ") : block[i]
            unsigned += Int64(byte)
            signed += Int64(Int8(bitPattern: byte))
        }
        return (unsigned, signed)
    }

    /// Decodes a block whose checksum holds. Throws, naming the member, when a number field
    /// is malformed or negative where that makes no sense.
    package init(parsing block: UnsafeRawBufferPointer) throws {
        var name = Self.text(block, Self.nameField)
        let isUSTAR = block[257..<263].elementsEqual(Self.ustarMagic.prefix(6))
        if isUSTAR {
            // GNU's "ustar  \0" magic reuses this area for other fields, so only POSIX ustar.
            let prefix = Self.text(block, Self.prefixField)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        func number(_ field: (Int, Int), _ what: String) throws -> Int64 {
            guard let value = Self.parseNumber(block, field) else {
                throw BlobStoreError(.invalidArgument, "invalid tar header for member \(String(reflecting: name)): malformed \(what) field")
            }
            return value
        }
        let mode = try number(Self.modeField, "mode")
        let size = try number(Self.sizeField, "size")
        guard size >= 0 else {
            throw BlobStoreError(.invalidArgument, "invalid tar header for member \(String(reflecting: name)): negative size \(size)")
        }
        self.init(name: name, mode: UInt32(truncatingIfNeeded: mode) & 0o7777,
                  uid: try number(Self.uidField, "uid"), gid: try number(Self.gidField, "gid"),
                  size: size, mtime: try number(Self.mtimeField, "mtime"),
                  typeflag: block[Self.typeflagOffset],
                  linkname: Self.text(block, Self.linknameField),
                  uname: Self.text(block, Self.unameField), gname: Self.text(block, Self.gnameField),
                  devMajor: try number(Self.devMajorField, "devmajor"),
                  devMinor: try number(Self.devMinorField, "devminor"))
    }

    /// The field's bytes up to the first NUL, as UTF-8.
    static func text(_ block: UnsafeRawBufferPointer, _ field: (Int, Int)) -> String {
        let bytes = block[field.0..<(field.0 + field.1)]
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
    }

    /// An octal field (surrounding spaces and NULs ignored, empty = 0) or a GNU base-256 one
    /// (first byte 0x80 set: big-endian two's complement, sign in bit 6 of the first byte).
    /// nil when malformed or out of Int64's range.
    static func parseNumber(_ block: UnsafeRawBufferPointer, _ field: (Int, Int)) -> Int64? {
        let bytes = UnsafeRawBufferPointer(rebasing: block[field.0..<(field.0 + field.1)])
        let first = bytes[0]
        if first & 0x80 != 0 {
            // Base-256: bit 6 of the first byte is the sign; the rest of it is part of the number.
            let invert: UInt8 = first & 0x40 != 0 ? 0xff : 0
            var value: UInt64 = 0
            for (i, raw) in bytes.enumerated() {
                let byte = i == 0 ? (raw ^ invert) & 0x7f : raw ^ invert
                guard value >> 56 == 0 else { return nil }
                value = value << 8 | UInt64(byte)
            }
            guard value >> 63 == 0 else { return nil }
            return invert == 0 ? Int64(value) : ~Int64(value)
        }
        var start = 0, end = bytes.count
        while start < end && (bytes[start] == 0x20 || bytes[start] == 0) { start += 1 }
        while end > start && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0) { end -= 1 }
        var value: Int64 = 0
        for i in start..<end {
            let c = bytes[i]
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "7") else { return nil }
            guard value <= Int64.max >> 3 else { return nil }
            value = value << 3 | Int64(c - UInt8(ascii: "0"))
        }
        return value
    }

    // MARK: Encoding

    /// Whether `value` fits the octal form of a field `width` bytes wide (digits + NUL).
    package static func fitsOctal(_ value: Int64, width: Int) -> Bool {
        value >= 0 && (width - 1 >= 21 || value < Int64(1) << (3 * (width - 1)))
    }

    /// Splits a path too long for `name` into a ustar prefix and name at a `/`; nil when no
    /// split fits (then the writer needs a PAX `path` record).
    package static func splitPath(_ path: [UInt8]) -> (prefix: ArraySlice<UInt8>, name: ArraySlice<UInt8>)? {
        guard path.count <= 100 + 1 + 155 else { return nil }
        // The longest prefix that fits leaves the shortest name.
        var i = min(path.count - 1, 155)
        while i > 0 {
            if path[i] == UInt8(ascii: "/") {
                let name = path[(i + 1)...]
                if name.count > 100 { return nil }
                if !name.isEmpty { return (path[..<i], name) }
            }
            i -= 1
        }
        return nil
    }

    /// Writes the block: text fields truncated to their width, numbers in octal or, when too
    /// big, base-256. The caller moves what does not fit into PAX records first.
    package func encode(into block: UnsafeMutableRawBufferPointer) {
        block.initializeMemory(as: UInt8.self, repeating: 0)
        let path = Array(name.utf8)
        if path.count <= 100 {
            Self.putText(block, Self.nameField, path[...])
        } else if let split = Self.splitPath(path) {
            Self.putText(block, Self.nameField, split.name)
            Self.putText(block, Self.prefixField, split.prefix)
        } else {
            Self.putText(block, Self.nameField, path[..<100])
        }
        Self.putNumber(block, Self.modeField, Int64(mode & 0o7777))
        Self.putNumber(block, Self.uidField, uid)
        Self.putNumber(block, Self.gidField, gid)
        Self.putNumber(block, Self.sizeField, size)
        Self.putNumber(block, Self.mtimeField, mtime)
        block[Self.typeflagOffset] = typeflag
        Self.putText(block, Self.linknameField, Array(linkname.utf8)[...])
        for (i, byte) in Self.ustarMagic.enumerated() { block[257 + i] = byte }
        Self.putText(block, Self.unameField, Array(uname.utf8)[...])
        Self.putText(block, Self.gnameField, Array(gname.utf8)[...])
        Self.putNumber(block, Self.devMajorField, devMajor)
        Self.putNumber(block, Self.devMinorField, devMinor)
        // Checksum: six octal digits, NUL, space, as every tar writes it.
        let (sum, _) = Self.checksums(UnsafeRawBufferPointer(block))
        Self.putOctal(block, (148, 7), sum)
        block[155] = UInt8(ascii: " ")
    }

    static func putText(_ block: UnsafeMutableRawBufferPointer, _ field: (Int, Int), _ bytes: ArraySlice<UInt8>) {
        for (i, byte) in bytes.prefix(field.1).enumerated() { block[field.0 + i] = byte }
    }

    static func putNumber(_ block: UnsafeMutableRawBufferPointer, _ field: (Int, Int), _ value: Int64) {
        if fitsOctal(value, width: field.1) {
            putOctal(block, field, value)
        } else {
            // GNU base-256: big-endian two's complement, first byte 0x80 (or 0xff if negative).
            var v = value
            for i in stride(from: field.0 + field.1 - 1, through: field.0, by: -1) {
                block[i] = UInt8(truncatingIfNeeded: v)
                v >>= 8
            }
            if value >= 0 { block[field.0] |= 0x80 }
        }
    }

    /// Zero-padded octal digits filling the field but its last byte, which stays NUL.
    static func putOctal(_ block: UnsafeMutableRawBufferPointer, _ field: (Int, Int), _ value: Int64) {
        var v = UInt64(value)
        for i in stride(from: field.0 + field.1 - 2, through: field.0, by: -1) {
            block[i] = UInt8(ascii: "0") + UInt8(v & 7)
            v >>= 3
        }
        block[field.0 + field.1 - 1] = 0
    }
}

/// PAX extended-header records: `"<length> <key>=<value>\n"`, the length counting the whole
/// record in decimal. Values are bytes (xattr values are binary); keys are UTF-8.
package enum PAXRecords {
    /// The records in order; nil when malformed. NUL padding after the last record is allowed.
    package static func parse(_ data: [UInt8]) -> [(key: String, value: [UInt8])]? {
        var records: [(key: String, value: [UInt8])] = []
        var i = 0
        while i < data.count {
            if data[i...].allSatisfy({ $0 == 0 }) { break }
            var length = 0, j = i
            while j < data.count, data[j] >= UInt8(ascii: "0"), data[j] <= UInt8(ascii: "9") {
                guard length < 1 << 40 else { return nil }
                length = length * 10 + Int(data[j] - UInt8(ascii: "0"))
                j += 1
            }
            guard j > i, j < data.count, data[j] == UInt8(ascii: " "),
                  length > j - i + 1, i + length <= data.count,
                  data[i + length - 1] == UInt8(ascii: "\n") else { return nil }
            let body = data[(j + 1)..<(i + length - 1)]
            guard let eq = body.firstIndex(of: UInt8(ascii: "=")), eq > body.startIndex else { return nil }
            records.append((String(decoding: body[..<eq], as: UTF8.self), Array(body[(eq + 1)...])))
            i += length
        }
        return records
    }

    /// Encodes records in the order given.
    package static func encode(_ records: [(key: String, value: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in records {
            // " key=value\n" plus the length's own digits, which may carry it to one more digit.
            let rest = 1 + key.utf8.count + 1 + value.count + 1
            var length = rest + String(rest).utf8.count
            if String(length).utf8.count > String(rest).utf8.count { length += 1 }
            out.append(contentsOf: String(length).utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: key.utf8)
            out.append(UInt8(ascii: "="))
            out.append(contentsOf: value)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// A non-negative decimal integer; nil when malformed or beyond Int64.
    package static func parseDecimal(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty else { return nil }
        var value: Int64 = 0
        for c in bytes {
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            guard !o1 && !o2 else { return nil }
            value = s
        }
        return value
    }

    /// A PAX time, `[-]seconds[.fraction]`, as whole seconds (rounded down) and nanoseconds.
    package static func parseTime(_ bytes: [UInt8]) -> (seconds: Int64, nanoseconds: UInt32)? {
        var digits = bytes[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        let dot = digits.firstIndex(of: UInt8(ascii: "."))
        guard let whole = parseDecimal(Array(digits[..<(dot ?? digits.endIndex)])) else { return nil }
        var nanos: Int64 = 0
        if let dot {
            let fraction = digits[(dot + 1)...]
            guard fraction.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            // Nanosecond precision; further digits are dropped.
            for i in 0..<9 {
                let c = fraction.dropFirst(i).first ?? UInt8(ascii: "0")
                nanos = nanos * 10 + Int64(c - UInt8(ascii: "0"))
            }
        }
        if !negative { return (whole, UInt32(nanos)) }
        return nanos == 0 ? (-whole, 0) : (-whole - 1, UInt32(1_000_000_000 - nanos))
    }

    /// The PAX form of a time; fractions only when there are nanoseconds.
    package static func formatTime(seconds: Int64, nanoseconds: UInt32) -> String {
        guard nanoseconds != 0 else { return String(seconds) }
        var whole = seconds, nanos = Int64(nanoseconds)
        if seconds < 0 { whole = seconds + 1; nanos = 1_000_000_000 - nanos }
        var fraction = String(nanos)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        let sign = seconds < 0 && whole == 0 ? "-" : ""
        return "\(sign)\(whole).\(fraction)"
    }
}
