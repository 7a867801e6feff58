#if canImport(Glibc)
import Glibc
#endif

/// Reads a tar stream member by member from a pull-based source, in bounded memory: one
/// 1 MiB buffer whatever the members' sizes.
///
///     let reader = TarReader(fileDescriptor: fd)
///     while let entry = try reader.next() {
///         if entry.kind == .regular { try reader.readContent { piece in ... } }
///     }
///
/// Understands ustar, GNU (`L`/`K` long names, base-256 numbers) and PAX (`x` and global `g`
/// records: path, linkpath, size, mtime, uid/gid, uname/gname, `SCHILY.xattr.*`). GNU sparse
/// members are refused: their data is not the file's bytes.
///
/// With `validatePaths` (the default) a member whose name, or hard-link target, is empty,
/// absolute, has a `..` component or a NUL byte is an error naming it, so nothing built from
/// the listing can escape its root. Symlink targets may be anything but contain NUL: an
/// absolute target is normal in a container layer and is resolved inside the rootfs.
///
/// The end is two zero blocks (anything after them is not read), a single zero block then
/// end of input, or end of input right after a member (as GNU tar accepts; `sawEndMarker`
/// tells which). End of input inside a header, extended header, data or padding is a
/// "truncated tar" error, and an empty input is not a tar archive.
public final class TarReader {
    public typealias Source = (UnsafeMutableRawBufferPointer) throws -> Int

    static let bufferSize = 1 << 20
    /// Bound on a GNU long name or PAX header held in memory; real ones are a few KiB.
    static let maxExtendedHeaderSize: Int64 = 8 << 20

    public let validatePaths: Bool
    /// Stream offset of the current member's data (its first byte after the headers).
    public private(set) var offset: UInt64 = 0
    /// Stream offset of the current member's first header block (a GNU or PAX extension
    /// header when it has one).
    public private(set) var headerOffset: UInt64 = 0
    /// Whether the archive ended with zero blocks, once `next()` has returned nil; false when
    /// the input just stopped after a member (GNU tar warns about that).
    public private(set) var sawEndMarker = false

    private let source: Source
    private let buffer: UnsafeMutableRawBufferPointer
    /// The unread bytes are buffer[start..<end]; buffer[start] is at stream offset `position`.
    private var start = 0, end = 0
    private var position: UInt64 = 0
    private var sourceEnded = false
    private var ended = false
    private var current: TarEntry?
    /// Data bytes of the current member not yet read, and the padding to its block boundary.
    private var remaining: UInt64 = 0
    private var padding: UInt64 = 0
    /// The last member returned, for error messages.
    private var previousPath: String?
    private var globalRecords: [String: [UInt8]] = [:]

    /// `read` fills up to `buffer.count` bytes and returns how many, 0 at end of input.
    public init(validatePaths: Bool = true, read: @escaping Source) {
        self.validatePaths = validatePaths
        self.source = read
        self.buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
    }

    /// Reads from `fileDescriptor`'s current position; the caller keeps it open meanwhile
    /// and closes it afterwards.
    public convenience init(fileDescriptor: Int32, validatePaths: Bool = true) {
        self.init(validatePaths: validatePaths) { buffer in
            while true {
                let n = Glibc.read(fileDescriptor, buffer.baseAddress, buffer.count)
                if n >= 0 { return n }
                if errno != EINTR { throw BlobStoreError.io("read tar stream from descriptor \(fileDescriptor)") }
            }
        }
    }

    deinit { buffer.deallocate() }

    // MARK: Members

    /// The next member's header, extensions applied, or nil at the end of the archive.
    /// Whatever data of the previous member was not read is skipped.
    public func next() throws -> TarEntry? {
        if ended { return nil }
        if let member = current {
            let skipped = try skip(remaining)
            if skipped < remaining {
                throw truncatedData(member, read: member.size - remaining + skipped)
            }
            if try skip(padding) < padding {
                throw BlobStoreError(.invalidArgument, "truncated tar: input ends in the padding after member \(quote(member.path))")
            }
            remaining = 0
            padding = 0
            previousPath = member.path
            current = nil
        }
        headerOffset = position
        var longName: String?, longLink: String?
        var local: [String: [UInt8]] = [:]
        var extended = false
        while true {
            let available = try fill(TarHeader.blockSize)
            if available < TarHeader.blockSize {
                if available == 0 && !extended {
                    // GNU tar, too, refuses an empty input.
                    if position == 0 {
                        throw BlobStoreError(.invalidArgument, "not a tar archive: the input is empty")
                    }
                    ended = true
                    return nil
                }
                throw truncatedHeader(available: available)
            }
            let block = UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: TarHeader.blockSize)
            if TarHeader.isZeroBlock(block) {
                if extended {
                    throw BlobStoreError(.invalidArgument, "invalid tar: the extension header at offset \(headerOffset) \(after) is followed by no member")
                }
                consume(TarHeader.blockSize)
                try checkSecondZeroBlock()
                ended = true
                sawEndMarker = true
                return nil
            }
            guard TarHeader.checksumMatches(block) else {
                if position == 0 {
                    throw BlobStoreError(.invalidArgument, "not a tar archive: the first header's checksum does not match")
                }
                throw BlobStoreError(.invalidArgument, "invalid tar: bad header checksum at offset \(position) (name field \(quote(TarHeader.text(block, TarHeader.nameField)))) \(after)")
            }
            let header = try TarHeader(parsing: block)
            consume(TarHeader.blockSize)

            switch header.typeflag {
            case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
                let data = try readExtension(header)
                switch header.typeflag {
                case UInt8(ascii: "L"): longName = Self.cString(data)
                case UInt8(ascii: "K"): longLink = Self.cString(data)
                default:
                    guard let records = PAXRecords.parse(data) else {
                        throw BlobStoreError(.invalidArgument, "invalid tar: malformed PAX header \(quote(header.name)) \(after)")
                    }
                    if header.typeflag == UInt8(ascii: "g") {
                        // An empty value removes the keyword.
                        for (key, value) in records { globalRecords[key] = value.isEmpty ? nil : value }
                    } else {
                        for (key, value) in records { local[key] = value }
                    }
                }
                if header.typeflag != UInt8(ascii: "g") { extended = true }
            case UInt8(ascii: "S"):
                throw BlobStoreError(.invalidArgument, "unsupported tar member \(quote(longName ?? header.name)): GNU sparse files are not supported")
            default:
                var entry = try makeEntry(header, longName: longName, longLink: longLink, local: local)
                if validatePaths { try validate(entry) }
                if !entry.kind.hasData { entry.size = 0 }
                current = entry
                remaining = entry.size
                padding = (UInt64(TarHeader.blockSize) - entry.size % UInt64(TarHeader.blockSize)) % UInt64(TarHeader.blockSize)
                offset = position
                return entry
            }
        }
    }

    /// Streams the rest of the current member's data to `body` in pieces of at most 1 MiB,
    /// each valid only during the call. Nothing happens past the end of the data, or before
    /// the first `next()`.
    public func readContent(into body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let member = current else { return }
        while remaining > 0 {
            let available = try fill(1)
            guard available > 0 else { throw truncatedData(member, read: member.size - remaining) }
            let n = Int(min(UInt64(available), remaining))
            let piece = UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: n)
            consume(n)
            remaining -= UInt64(n)
            try body(piece)
        }
    }

    /// The rest of the current member's data in memory, for small members (manifests,
    /// configs); an error when the member is larger than `maxSize`.
    public func readContent(maxSize: Int) throws -> [UInt8] {
        guard let member = current else { return [] }
        guard remaining <= UInt64(maxSize) else {
            throw BlobStoreError(.invalidArgument, "tar member \(quote(member.path)) has \(remaining) bytes, more than the \(maxSize) expected")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(remaining))
        try readContent { out.append(contentsOf: $0) }
        return out
    }

    // MARK: Building entries

    private func makeEntry(_ header: TarHeader, longName: String?, longLink: String?,
                           local: [String: [UInt8]]) throws -> TarEntry {
        var records = globalRecords
        for (key, value) in local { records[key] = value.isEmpty ? nil : value }
        let path = records["path"].map { String(decoding: $0, as: UTF8.self) } ?? longName ?? header.name
        func invalid(_ what: String) -> BlobStoreError {
            BlobStoreError(.invalidArgument, "invalid tar header for member \(quote(path)): \(what)")
        }
        var kind = TarEntry.Kind(typeflag: header.typeflag)
        // Pre-POSIX archives mark directories with a trailing slash on a regular type flag.
        if header.typeflag == 0 && path.hasSuffix("/") { kind = .directory }
        guard header.uid >= 0, header.gid >= 0 else { throw invalid("negative uid or gid") }
        guard let devMajor = UInt32(exactly: header.devMajor), let devMinor = UInt32(exactly: header.devMinor) else {
            throw invalid("device number out of range")
        }
        var entry = TarEntry(path: path, kind: kind, size: UInt64(header.size), mode: header.mode,
                             uid: Int(header.uid), gid: Int(header.gid), mtime: header.mtime,
                             linkTarget: longLink ?? header.linkname, uname: header.uname, gname: header.gname,
                             devMajor: devMajor, devMinor: devMinor)
        for (key, value) in records {
            switch key {
            case "path":
                break
            case "linkpath":
                entry.linkTarget = String(decoding: value, as: UTF8.self)
            case "size":
                guard let size = PAXRecords.parseDecimal(value) else { throw invalid("malformed PAX size") }
                entry.size = UInt64(size)
            case "uid", "gid":
                guard let id = PAXRecords.parseDecimal(value) else { throw invalid("malformed PAX \(key)") }
                if key == "uid" { entry.uid = Int(id) } else { entry.gid = Int(id) }
            case "uname":
                entry.uname = String(decoding: value, as: UTF8.self)
            case "gname":
                entry.gname = String(decoding: value, as: UTF8.self)
            case "mtime":
                guard let time = PAXRecords.parseTime(value) else { throw invalid("malformed PAX mtime") }
                (entry.mtime, entry.mtimeNanoseconds) = time
            case _ where key.hasPrefix("SCHILY.xattr."):
                entry.xattrs[String(key.dropFirst("SCHILY.xattr.".count))] = value
            case _ where key.hasPrefix("GNU.sparse."):
                throw BlobStoreError(.invalidArgument, "unsupported tar member \(quote(path)): GNU sparse files are not supported")
            default:
                entry.paxRecords[key] = String(decoding: value, as: UTF8.self)
            }
        }
        return entry
    }

    /// Refuses names that could land outside the extraction root.
    private func validate(_ entry: TarEntry) throws {
        if entry.path.isEmpty {
            throw BlobStoreError(.invalidArgument, "unsafe tar member with an empty name \(after)")
        }
        if let problem = Self.pathProblem(entry.path) {
            throw BlobStoreError(.invalidArgument, "unsafe tar member \(quote(entry.path)): name \(problem)")
        }
        switch entry.kind {
        case .hardLink:
            if let problem = Self.pathProblem(entry.linkTarget) {
                throw BlobStoreError(.invalidArgument, "unsafe tar member \(quote(entry.path)): hard link target \(quote(entry.linkTarget)) \(problem)")
            }
        case .symlink:
            if entry.linkTarget.utf8.contains(0) {
                throw BlobStoreError(.invalidArgument, "unsafe tar member \(quote(entry.path)): symlink target contains a NUL byte")
            }
        default:
            break
        }
    }

    /// Why a member name or hard-link target is unsafe, or nil.
    static func pathProblem(_ path: String) -> String? {
        let bytes = path.utf8
        if bytes.isEmpty { return "is empty" }
        if bytes.contains(0) { return "contains a NUL byte" }
        if bytes.first == UInt8(ascii: "/") { return "is an absolute path" }
        if bytes.split(separator: UInt8(ascii: "/")).contains(where: { $0.elementsEqual("..".utf8) }) {
            return "has a \"..\" component"
        }
        return nil
    }

    /// A GNU long name: the data up to its terminating NULs (inner NULs stay, and fail
    /// validation, rather than silently cutting the name short).
    private static func cString(_ data: [UInt8]) -> String {
        var end = data.count
        while end > 0 && data[end - 1] == 0 { end -= 1 }
        return String(decoding: data[..<end], as: UTF8.self)
    }

    private func readExtension(_ header: TarHeader) throws -> [UInt8] {
        guard header.size <= Self.maxExtendedHeaderSize else {
            throw BlobStoreError(.invalidArgument, "invalid tar: extension header \(quote(header.name)) \(after) is \(header.size) bytes, more than \(Self.maxExtendedHeaderSize)")
        }
        let size = Int(header.size)
        var data: [UInt8] = []
        data.reserveCapacity(size)
        while data.count < size {
            let available = try fill(1)
            guard available > 0 else {
                throw BlobStoreError(.invalidArgument, "truncated tar: input ends inside the extension header \(quote(header.name)) \(after)")
            }
            let n = min(available, size - data.count)
            data.append(contentsOf: UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: n))
            consume(n)
        }
        let pad = (UInt64(TarHeader.blockSize) - UInt64(size) % UInt64(TarHeader.blockSize)) % UInt64(TarHeader.blockSize)
        guard try skip(pad) == pad else {
            throw BlobStoreError(.invalidArgument, "truncated tar: input ends inside the extension header \(quote(header.name)) \(after)")
        }
        return data
    }

    /// After one zero block: a second one, or the end of input, ends the archive; anything
    /// else is an error rather than a guess (readers disagree on what follows a lone zero block).
    private func checkSecondZeroBlock() throws {
        let available = try fill(TarHeader.blockSize)
        let rest = UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: min(available, TarHeader.blockSize))
        if available < TarHeader.blockSize {
            if rest.allSatisfy({ $0 == 0 }) { return }
        } else if TarHeader.isZeroBlock(rest) {
            consume(TarHeader.blockSize)
            return
        }
        throw BlobStoreError(.invalidArgument, "invalid tar: a single zero block at offset \(position - UInt64(TarHeader.blockSize)) is followed by more data \(after)")
    }

    // MARK: Errors

    private func quote(_ path: String) -> String { String(reflecting: path) }

    /// "after member X", for errors about a header whose own name is unknown or unreliable.
    private var after: String {
        previousPath.map { "after member \(quote($0))" } ?? "before the first member"
    }

    private func truncatedData(_ member: TarEntry, read: UInt64) -> BlobStoreError {
        BlobStoreError(.invalidArgument, "truncated tar: input ends inside the data of member \(quote(member.path)) (\(read) of \(member.size) bytes, data at offset \(offset))")
    }

    private func truncatedHeader(available: Int) -> BlobStoreError {
        if previousPath == nil && position == 0 {
            return BlobStoreError(.invalidArgument, "not a tar archive: input ends after \(available) bytes, inside the first header")
        }
        // The name field comes first, so a cut header may still say whose it is.
        var name = ""
        if available >= 100 {
            name = " of member " + quote(TarHeader.text(UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: available), TarHeader.nameField))
        }
        return BlobStoreError(.invalidArgument, "truncated tar: input ends inside the header\(name) at offset \(position) \(after)")
    }

    // MARK: Buffer

    /// Makes `count` contiguous bytes available at `start` unless the input ends first;
    /// returns how many are available.
    private func fill(_ count: Int) throws -> Int {
        if start == end {
            start = 0
            end = 0
        }
        if end - start >= count || sourceEnded { return end - start }
        if buffer.count - start < count {
            // Move the tail to the front so `count` bytes fit contiguously.
            memmove(buffer.baseAddress!, buffer.baseAddress! + start, end - start)
            end -= start
            start = 0
        }
        while end - start < count {
            let n = try source(UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            guard n >= 0, n <= buffer.count - end else {
                throw BlobStoreError(.io, "tar source returned \(n) for a \(buffer.count - end)-byte buffer")
            }
            if n == 0 {
                sourceEnded = true
                break
            }
            end += n
        }
        return end - start
    }

    private func consume(_ count: Int) {
        start += count
        position += UInt64(count)
    }

    /// Discards up to `count` bytes; returns how many there were before the input ended.
    private func skip(_ count: UInt64) throws -> UInt64 {
        var left = count
        while left > 0 {
            let available = try fill(1)
            if available == 0 { break }
            let n = Int(min(UInt64(available), left))
            consume(n)
            left -= UInt64(n)
        }
        return count - left
    }
}
