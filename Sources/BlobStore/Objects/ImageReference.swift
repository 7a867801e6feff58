/// `name[:tag]` or `name@sha256:<hex>`, checked against the OCI distribution grammar so a
/// hostile name (`../x`, spaces, upper case) never reaches the index or a file path.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var tag: String?
    public var digest: Digest?

    public init(name: String, tag: String) throws {
        guard ImageReference.isValidName(name) else { throw BlobStoreError(.invalidArgument, "invalid repository name \"\(name)\"") }
        guard ImageReference.isValidTag(tag) else { throw BlobStoreError(.invalidArgument, "invalid tag \"\(tag)\"") }
        self.name = name
        self.tag = tag
    }

    /// Parses `name`, `name:tag` or `name@digest`; a bare name means `:latest`.
    public init(parsing text: String) throws {
        if let at = text.firstIndex(of: "@") {
            name = String(text[..<at])
            guard let d = Digest(parsing: text[text.index(after: at)...]), text[text.index(after: at)...].hasPrefix("sha256:") else {
                throw BlobStoreError(.invalidArgument, "invalid digest in reference \"\(text)\"")
            }
            digest = d
        } else {
            let lastSlash = text.lastIndex(of: "/")
            let searchFrom = lastSlash.map { text.index(after: $0) } ?? text.startIndex
            if let colon = text[searchFrom...].lastIndex(of: ":") {
                name = String(text[..<colon])
                tag = String(text[text.index(after: colon)...])
            } else {
                name = text
                tag = "latest"
            }
        }
        guard ImageReference.isValidName(name) else { throw BlobStoreError(.invalidArgument, "invalid repository name \"\(name)\"") }
        if let tag, !ImageReference.isValidTag(tag) { throw BlobStoreError(.invalidArgument, "invalid tag \"\(tag)\"") }
    }

    public var description: String {
        if let digest { return "\(name)@\(digest)" }
        return "\(name):\(tag ?? "latest")"
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most
    /// 255 bytes; a first component may be a registry host with a port (`localhost:5000`).
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 255 else { return false }
        var components = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if components.count > 1, let first = components.first, first.contains(":") || first.contains(".") || first == "localhost" {
            guard isValidHost(first) else { return false }
            components.removeFirst()
        }
        return components.allSatisfy(isValidComponent)
    }

    static func isValidComponent(_ c: String) -> Bool {
        let bytes = Array(c.utf8)
        guard let first = bytes.first, let last = bytes.last, isAlnum(first), isAlnum(last) else { return false }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if isAlnum(b) { i += 1; continue }
            // A separator: ".", "_", "__" or a run of "-", between alphanumerics.
            if b == UInt8(ascii: ".") {
                i += 1
            } else if b == UInt8(ascii: "_") {
                i += (i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "_")) ? 2 : 1
            } else if b == UInt8(ascii: "-") {
                while i < bytes.count && bytes[i] == UInt8(ascii: "-") { i += 1 }
            } else {
                return false
            }
            guard i < bytes.count, isAlnum(bytes[i]) else { return false }
        }
        return true
    }

    static func isValidHost(_ host: String) -> Bool {
        let parts = host.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let h = parts.first, !h.isEmpty else { return false }
        if parts.count == 2 { guard let port = Int(parts[1]), (1...65535).contains(port) else { return false } }
        return h.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || ($0 >= 65 && $0 <= 90) }
    }

    /// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    public static func isValidTag(_ tag: String) -> Bool {
        let bytes = Array(tag.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func word(_ b: UInt8) -> Bool { isAlnum(b) || (b >= 65 && b <= 90) || b == UInt8(ascii: "_") }
        return word(first) && bytes.dropFirst().allSatisfy { word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }
}
