/// Percent-encoding as SigV4 defines it: every byte of the UTF-8 form except RFC 3986's
/// unreserved set (A-Z a-z 0-9 - . _ ~) becomes %XX with upper-case hex. The same
/// function builds the URL that is sent and the canonical request that is signed, so the
/// two can never disagree (a mismatch shows up as SignatureDoesNotMatch, not as a bug).
public enum URIEncoding {
    /// Encodes one query name or value, or one path segment: '/' is encoded too.
    public static func encode(_ string: String) -> String {
        encode(string, keepingSlash: false)
    }

    /// Encodes an object key for the path: '/' stays, since S3 keys use it as a separator
    /// and the canonical URI keeps it literal.
    public static func encodePath(_ string: String) -> String {
        encode(string, keepingSlash: true)
    }

    static func encode(_ string: String, keepingSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepingSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical query string: names and values encoded, pairs sorted by name then
    /// value (byte order of the encoded forms), a parameter without value as `name=`.
    public static func canonicalQuery(_ items: [(name: String, value: String)]) -> String {
        items.map { (encode($0.name), encode($0.value)) }
            .sorted { $0.0 != $1.0 ? Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8))
                                   : Array($0.1.utf8).lexicographicallyPrecedes(Array($1.1.utf8)) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }
}
