#if canImport(Glibc)
import Glibc
#endif

/// Writes a tar stream to a sink: ustar headers, with a PAX extended header in front of a
/// member whose path or link target is too long, whose size, uid, gid or mtime does not fit
/// the octal fields (or mtime has nanoseconds), or that has xattrs or other PAX records.
///
///     var writer = TarWriter { bytes in try out.write(bytes) }
///     try writer.writeEntry(TarEntry(path: "etc/", kind: .directory))
///     try writer.writeEntry(TarEntry(path: "etc/hostname", kind: .regular, size: 5), content: Array("box\n\n".utf8))
///     try writer.finish()
///
/// Output depends only on the entries written (PAX records are sorted), so the same
/// entries give the same bytes. Names are written as given: the writer does not refuse
/// `..` or absolute paths, `TarReader` does. Small writes are gathered into 64 KiB before
/// reaching the sink; large content pieces pass straight through.
public struct TarWriter {
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    static let stagingSize = 64 << 10
    static let copyBufferSize = 1 << 20

    /// Bytes of archive produced so far (some may still wait in the staging buffer).
    public private(set) var bytesWritten: UInt64 = 0

    private let sink: Sink
    private var staging: [UInt8] = []
    private var copyBuffer: [UInt8] = []
    /// The member whose content is being written: its path, size and bytes still due.
    private var openMember: (path: String, size: UInt64, remaining: UInt64)?
    private var finished = false

    public init(sink: @escaping Sink) {
        self.sink = sink
    }

    // MARK: Entries

    /// A member without content: directory, symlink, hard link, device, fifo or empty file.
    public mutating func writeEntry(_ entry: TarEntry) throws {
        try beginEntry(entry)
        try endEntry()
    }

    /// A member whose content is `content`, exactly `entry.size` bytes.
    public mutating func writeEntry(_ entry: TarEntry, content: UnsafeRawBufferPointer) throws {
        guard UInt64(content.count) == entry.size else {
            throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: entry.path)): \(content.count) bytes of content for a size of \(entry.size)")
        }
        try beginEntry(entry)
        try writeContent(content)
        try endEntry()
    }

    public mutating func writeEntry(_ entry: TarEntry, content: [UInt8]) throws {
        try content.withUnsafeBytes { try writeEntry(entry, content: $0) }
    }

    /// A member whose `entry.size` bytes of content are pulled from `content`, which fills
    /// up to `buffer.count` bytes and returns how many (0 at its end, which must not come
    /// early). Memory stays at one 1 MiB buffer.
    public mutating func writeEntry(_ entry: TarEntry, content: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        try beginEntry(entry)
        // Taken out of self so filling it and writing from it do not overlap accesses to self.
        var buffer = copyBuffer.isEmpty ? [UInt8](repeating: 0, count: Self.copyBufferSize) : copyBuffer
        copyBuffer = []
        defer { copyBuffer = buffer }
        while let member = openMember, member.remaining > 0 {
            let wanted = Int(min(UInt64(buffer.count), member.remaining))
            let n = try buffer.withUnsafeMutableBytes { try content(UnsafeMutableRawBufferPointer(rebasing: $0[..<wanted])) }
            guard n > 0 && n <= wanted else {
                throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: member.path)): content ended after \(member.size - member.remaining) of \(member.size) bytes")
            }
            try buffer.withUnsafeBytes { try writeContent(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
        try endEntry()
    }

    /// A member whose content is read from `fileDescriptor`'s current position.
    public mutating func writeEntry(_ entry: TarEntry, contentOf fileDescriptor: Int32) throws {
        try writeEntry(entry) { buffer in
            while true {
                let n = Glibc.read(fileDescriptor, buffer.baseAddress, buffer.count)
                if n >= 0 { return n }
                if errno != EINTR { throw BlobStoreError.io("read content of tar member \(String(reflecting: entry.path))") }
            }
        }
    }

    /// Writes the member's headers; its content follows with `writeContent` and ends with
    /// `endEntry`. For producers that push data (a blob being read, a network stream).
    public mutating func beginEntry(_ entry: TarEntry) throws {
        guard !finished else { throw BlobStoreError(.invalidArgument, "tar writer already finished, cannot add \(String(reflecting: entry.path))") }
        if let member = openMember {
            throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: member.path)) is not finished, cannot begin \(String(reflecting: entry.path))")
        }
        guard entry.kind.hasData || entry.size == 0 else {
            throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: entry.path)): a \(entry.kind) member has no content, but its size is \(entry.size)")
        }
        let (header, records) = try Self.headers(for: entry)
        var block = [UInt8](repeating: 0, count: TarHeader.blockSize)
        if !records.isEmpty {
            let data = PAXRecords.encode(records)
            let name = "PaxHeaders/" + (entry.path.split(separator: "/").last.map(String.init) ?? "entry")
            let paxHeader = TarHeader(name: name, mode: 0o644, uid: 0, gid: 0, size: Int64(data.count),
                                      mtime: 0, typeflag: UInt8(ascii: "x"))
            block.withUnsafeMutableBytes { paxHeader.encode(into: $0) }
            try emit(block)
            try emit(data)
            try emitPadding(after: UInt64(data.count))
        }
        block.withUnsafeMutableBytes { header.encode(into: $0) }
        try emit(block)
        openMember = (entry.path, entry.size, entry.size)
    }

    /// The next piece of the open member's content.
    public mutating func writeContent(_ bytes: UnsafeRawBufferPointer) throws {
        guard let member = openMember else {
            throw BlobStoreError(.invalidArgument, "tar content written with no member begun")
        }
        guard UInt64(bytes.count) <= member.remaining else {
            throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: member.path)): more content than its size of \(member.size) bytes")
        }
        try emit(bytes)
        openMember!.remaining -= UInt64(bytes.count)
    }

    /// Pads the open member's content to a block boundary; its content must be complete.
    public mutating func endEntry() throws {
        guard let member = openMember else {
            throw BlobStoreError(.invalidArgument, "tar member ended with no member begun")
        }
        guard member.remaining == 0 else {
            throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: member.path)): content ended after \(member.size - member.remaining) of \(member.size) bytes")
        }
        try emitPadding(after: member.size)
        openMember = nil
    }

    /// Writes the end of the archive (two zero blocks) and hands everything to the sink.
    public mutating func finish() throws {
        if let member = openMember {
            throw BlobStoreError(.invalidArgument, "tar member \(String(reflecting: member.path)) is not finished")
        }
        guard !finished else { return }
        try emit([UInt8](repeating: 0, count: 2 * TarHeader.blockSize))
        try flush()
        finished = true
    }

    /// Hands staged bytes to the sink.
    public mutating func flush() throws {
        guard !staging.isEmpty else { return }
        try staging.withUnsafeBytes { try sink($0) }
        staging.removeAll(keepingCapacity: true)
    }

    // MARK: Headers

    /// The ustar header for `entry`, and the PAX records (sorted by key) for what it cannot hold.
    static func headers(for entry: TarEntry) throws -> (TarHeader, [(key: String, value: [UInt8])]) {
        func invalid(_ what: String) -> BlobStoreError {
            BlobStoreError(.invalidArgument, "tar member \(String(reflecting: entry.path)): \(what)")
        }
        guard entry.uid >= 0, entry.gid >= 0 else { throw invalid("negative uid or gid") }
        guard entry.size <= UInt64(Int64.max) else { throw invalid("size \(entry.size) is too large") }
        var records: [String: [UInt8]] = [:]
        var header = TarHeader(name: entry.path, mode: entry.mode & 0o7777, uid: Int64(entry.uid), gid: Int64(entry.gid),
                               size: Int64(entry.size), mtime: entry.mtime, typeflag: entry.kind.typeflag,
                               linkname: entry.linkTarget, uname: entry.uname, gname: entry.gname,
                               devMajor: Int64(entry.devMajor), devMinor: Int64(entry.devMinor))
        let path = Array(entry.path.utf8)
        if path.contains(0) || (path.count > 100 && TarHeader.splitPath(path) == nil) {
            records["path"] = path // the ustar name keeps a truncated copy
        }
        let link = Array(entry.linkTarget.utf8)
        if link.count > 100 || link.contains(0) {
            records["linkpath"] = link
        }
        if !TarHeader.fitsOctal(header.size, width: 12) {
            records["size"] = Array(String(header.size).utf8)
            header.size = 0
        }
        if !TarHeader.fitsOctal(header.uid, width: 8) {
            records["uid"] = Array(String(header.uid).utf8)
            header.uid = 0
        }
        if !TarHeader.fitsOctal(header.gid, width: 8) {
            records["gid"] = Array(String(header.gid).utf8)
            header.gid = 0
        }
        if entry.mtimeNanoseconds != 0 || !TarHeader.fitsOctal(entry.mtime, width: 12) {
            guard entry.mtimeNanoseconds < 1_000_000_000 else { throw invalid("mtime nanoseconds \(entry.mtimeNanoseconds) out of range") }
            records["mtime"] = Array(PAXRecords.formatTime(seconds: entry.mtime, nanoseconds: entry.mtimeNanoseconds).utf8)
            header.mtime = min(max(entry.mtime, 0), 0o77777777777)
        }
        // uname and gname are NUL-terminated, so 31 bytes at most.
        if entry.uname.utf8.count > 31 {
            records["uname"] = Array(entry.uname.utf8)
            header.uname = ""
        }
        if entry.gname.utf8.count > 31 {
            records["gname"] = Array(entry.gname.utf8)
            header.gname = ""
        }
        // A PAX keyword ends at the first "=", so a name holding one could not be read back.
        for (name, value) in entry.xattrs {
            guard !name.isEmpty, !name.utf8.contains(UInt8(ascii: "=")), !name.utf8.contains(0) else {
                throw invalid("xattr name \(String(reflecting: name)) cannot be archived")
            }
            records["SCHILY.xattr." + name] = value
        }
        for (key, value) in entry.paxRecords where !Self.fieldKeys.contains(key) && !key.hasPrefix("SCHILY.xattr.") {
            guard !key.isEmpty, !key.utf8.contains(UInt8(ascii: "=")), !key.utf8.contains(0) else {
                throw invalid("PAX keyword \(String(reflecting: key)) cannot be archived")
            }
            records[key] = Array(value.utf8)
        }
        // Sorted, because dictionary order changes from one process to the next.
        let sorted = records.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return (header, sorted.map { (key: $0.key, value: $0.value) })
    }

    /// PAX keywords that stand for TarEntry fields; a `paxRecords` entry cannot override them.
    static let fieldKeys: Set<String> = ["path", "linkpath", "size", "uid", "gid", "mtime", "uname", "gname"]

    // MARK: Output

    private mutating func emit(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try emit($0) }
    }

    private mutating func emit(_ bytes: UnsafeRawBufferPointer) throws {
        bytesWritten += UInt64(bytes.count)
        if bytes.count >= Self.stagingSize / 2 {
            try flush()
            try sink(bytes)
            return
        }
        staging.append(contentsOf: bytes)
        if staging.count >= Self.stagingSize { try flush() }
    }

    private mutating func emitPadding(after size: UInt64) throws {
        let pad = Int((UInt64(TarHeader.blockSize) - size % UInt64(TarHeader.blockSize)) % UInt64(TarHeader.blockSize))
        if pad == 0 { return }
        bytesWritten += UInt64(pad)
        staging.append(contentsOf: repeatElement(0, count: pad))
        if staging.count >= Self.stagingSize { try flush() }
    }
}

// MARK: Directory trees

extension TarWriter {
    /// Writes a complete tar of the tree at `path` to `sink`, deterministically: the same
    /// tree gives the same bytes.
    ///
    /// Members are the tree's contents (not the root itself), sorted bytewise by archived
    /// path, relative and without `./`; directories end in `/`. Regular files, directories,
    /// symlinks, fifos and devices are archived with mode, uid, gid and whole-second mtime
    /// from `lstat`; user and group names, xattrs and sockets are left out. A file reached
    /// by several names in the tree (same device and inode) is stored once, under its first
    /// path, and the others become hard links to it. Names that are not UTF-8 are an error.
    ///
    /// The tree may belong to someone else, who may change it meanwhile: everything is
    /// opened through a `ConfinedDirectory` that follows no symlink, so a directory swapped
    /// for a symlink to elsewhere is an error ("changed while being archived"), never a read
    /// outside the tree, and each file opened must be the one listed.
    ///
    /// With `overlayUpper`, the tree is an overlayfs upper directory and the archive is the
    /// image layer it amounts to: a whiteout (character device 0/0) becomes `.wh.NAME`, an
    /// opaque directory (`trusted.overlay.opaque`) gains a `.wh..wh..opq` member, and the
    /// extended attributes of files and directories (file capabilities, say) are kept,
    /// overlayfs's own excepted. `TarExtractor`'s `overlayUpper` turns it back.
    public static func archiveDirectory(_ path: String, overlayUpper: Bool = false, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var rootStat = stat()
        guard lstat(path, &rootStat) == 0 else { throw BlobStoreError.io("stat", path: path) }
        guard rootStat.st_mode & S_IFMT == S_IFDIR else {
            throw BlobStoreError(.invalidArgument, "cannot archive \(path): not a directory")
        }
        let root = try ConfinedDirectory(path, role: "directory being archived")
        guard TreeWalk.isSameFile(try root.status(), rootStat) else { throw TreeWalk.changed(path) }
        var found = try TreeWalk.list(root)
        found.sort { $0.archivePath.lexicographicallyPrecedes($1.archivePath) }

        try withoutActuallyEscaping(sink) { sink in
            var writer = TarWriter(sink: sink)
            var firstPaths: [TreeWalk.FileID: String] = [:]
            for file in found {
                let st = file.stat
                let archivePath = String(decoding: file.archivePath, as: UTF8.self)
                var entry = TarEntry(path: archivePath, kind: .regular, mode: UInt32(st.st_mode) & 0o7777,
                                     uid: Int(st.st_uid), gid: Int(st.st_gid), mtime: Int64(st.st_mtim.tv_sec))
                let type = st.st_mode & S_IFMT
                if type != S_IFDIR && st.st_nlink > 1 {
                    let id = TreeWalk.FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                    if let first = firstPaths[id] {
                        entry.kind = .hardLink
                        entry.linkTarget = first
                        try writer.writeEntry(entry)
                        continue
                    }
                    firstPaths[id] = archivePath
                }
                switch type {
                case S_IFREG:
                    entry.size = UInt64(st.st_size)
                    // O_NONBLOCK: should a FIFO have taken the file's place, the open must
                    // not wait for a writer before the check below refuses it.
                    let handle = try root.open(file.relative, flags: O_RDONLY | O_NONBLOCK, symlinks: .refuse)
                    var now = stat()
                    guard fstat(handle.fd, &now) == 0 else { throw BlobStoreError.io("fstat", path: file.fullPath) }
                    guard TreeWalk.isSameFile(now, st) else { throw TreeWalk.changed(file.fullPath) }
                    if overlayUpper { entry.xattrs = try ExtendedAttributes.read(handle.fd, path: file.fullPath).filter { !$0.key.hasPrefix("trusted.overlay.") } }
                    try writer.writeEntry(entry, contentOf: handle.fd)
                case S_IFDIR:
                    entry.kind = .directory
                    var opaque = false
                    if overlayUpper {
                        let handle = try root.open(file.relative, flags: O_RDONLY | O_DIRECTORY, symlinks: .refuse)
                        let attributes = try ExtendedAttributes.read(handle.fd, path: file.fullPath)
                        opaque = attributes["trusted.overlay.opaque"] == Array("y".utf8)
                        entry.xattrs = attributes.filter { !$0.key.hasPrefix("trusted.overlay.") }
                    }
                    try writer.writeEntry(entry)
                    if opaque {
                        try writer.writeEntry(TarEntry(path: archivePath + ".wh..wh..opq", kind: .regular, mode: 0, mtime: entry.mtime))
                    }
                case S_IFCHR where overlayUpper && st.st_rdev == 0:
                    let slash = archivePath.lastIndex(of: "/").map { archivePath.index(after: $0) } ?? archivePath.startIndex
                    let whiteout = archivePath[..<slash] + ".wh." + archivePath[slash...]
                    try writer.writeEntry(TarEntry(path: String(whiteout), kind: .regular, mode: 0, mtime: entry.mtime))
                case S_IFLNK:
                    entry.kind = .symlink
                    entry.linkTarget = try TreeWalk.readLink(file, in: root)
                    try writer.writeEntry(entry)
                case S_IFIFO:
                    entry.kind = .fifo
                    try writer.writeEntry(entry)
                case S_IFCHR, S_IFBLK:
                    entry.kind = type == S_IFCHR ? .characterDevice : .blockDevice
                    // glibc's dev_t layout: major in bits 8-19 and 32-43, minor in 0-7 and 20-31.
                    let rdev = UInt64(st.st_rdev)
                    entry.devMajor = UInt32(truncatingIfNeeded: ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff))
                    entry.devMinor = UInt32(truncatingIfNeeded: (rdev & 0xff) | ((rdev >> 12) & ~0xff))
                    try writer.writeEntry(entry)
                default:
                    break // sockets cannot be archived
                }
            }
            try writer.finish()
        }
    }
}

/// Lists a directory tree with `lstat` (symlinks are not followed).
enum TreeWalk {
    struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    struct Found {
        /// The path inside the tree as archived: relative, directories with a trailing `/`.
        var archivePath: [UInt8]
        /// The path below the root, as `ConfinedDirectory` opens it.
        var relative: String
        /// For messages.
        var fullPath: String
        var stat: Glibc.stat
    }

    /// Every entry below `root`, with its `lstat`. Each directory is opened from the root
    /// with no symlink followed and its entries stat'ed relative to that descriptor, so what
    /// is listed is inside the tree whatever changes meanwhile.
    static func list(_ root: ConfinedDirectory) throws -> [Found] {
        var found: [Found] = []
        var pending = [""]
        while let dirRelative = pending.popLast() {
            let dirFull = dirRelative.isEmpty ? root.path : root.path + "/" + dirRelative
            let handle = try root.open(dirRelative, flags: O_RDONLY | O_DIRECTORY, symlinks: .refuse)
            let listing = dup(handle.fd) // fdopendir owns it; `handle` stays for fstatat
            guard listing >= 0 else { throw BlobStoreError.io("dup", path: dirFull) }
            guard let dir = fdopendir(listing) else {
                close(listing)
                throw BlobStoreError.io("open directory", path: dirFull)
            }
            defer { closedir(dir) }
            while true {
                errno = 0
                guard let item = readdir(dir) else {
                    if errno != 0 { throw BlobStoreError.io("read directory", path: dirFull) }
                    break
                }
                let nameBytes = withUnsafeBytes(of: item.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                if nameBytes == [0x2e] || nameBytes == [0x2e, 0x2e] { continue }
                let full = dirFull + "/" + String(decoding: nameBytes, as: UTF8.self)
                guard let name = String(validating: nameBytes, as: UTF8.self) else {
                    throw BlobStoreError(.invalidArgument, "cannot archive \(full): the name is not UTF-8")
                }
                var st = Glibc.stat()
                guard fstatat(handle.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw BlobStoreError.io("stat", path: full) }
                let relative = dirRelative.isEmpty ? name : dirRelative + "/" + name
                let isDirectory = st.st_mode & S_IFMT == S_IFDIR
                found.append(Found(archivePath: Array((isDirectory ? relative + "/" : relative).utf8), relative: relative, fullPath: full, stat: st))
                if isDirectory { pending.append(relative) }
            }
        }
        return found
    }

    /// The target of a listed symlink, read from its directory opened inside the tree.
    static func readLink(_ file: Found, in root: ConfinedDirectory) throws -> String {
        let slash = file.relative.lastIndex(of: "/")
        let parent = slash.map { String(file.relative[..<$0]) } ?? ""
        let name = slash.map { String(file.relative[file.relative.index(after: $0)...]) } ?? file.relative
        let dir = try root.open(parent, flags: O_RDONLY | O_DIRECTORY, symlinks: .refuse)
        guard let bytes = ConfinedDirectory.readLink(dir.fd, name) else { throw changed(file.fullPath) }
        guard let target = String(validating: bytes, as: UTF8.self) else {
            throw BlobStoreError(.invalidArgument, "cannot archive \(file.fullPath): the symlink target is not UTF-8")
        }
        return target
    }

    static func isSameFile(_ a: Glibc.stat, _ b: Glibc.stat) -> Bool {
        a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_mode & S_IFMT == b.st_mode & S_IFMT
    }

    static func changed(_ path: String) -> BlobStoreError {
        BlobStoreError(.invalidArgument, "cannot archive \(path): it changed while being archived")
    }

}
