#if canImport(Glibc)
import Glibc
#endif

/// A directory in which relative paths are opened without ever leaving it, for trees an
/// attacker may have shaped: an image layout to import, a folder to archive.
///
/// Each component is opened with `openat(parent, name, O_NOFOLLOW)` from the directory
/// opened before it; `..` goes back to a directory already opened, never above the root;
/// a symlink is not followed by the kernel but read (`readlinkat`) and its target resolved
/// the same way, so an absolute target, or one that climbs above the root, is an error.
/// Checking `realpath(path)` against the root's prefix first and opening afterwards would
/// leave a window in which a rename or a symlink swap sends the open elsewhere; working on
/// descriptors leaves none: whatever the tree does meanwhile, every open is of an entry of a
/// directory this walk reached from the root. (Linux's `openat2(RESOLVE_BENEATH)` does the
/// same in the kernel, but needs 5.6 and a raw syscall; this is portable and as strict.)
final class ConfinedDirectory {
    let path: String
    /// What errors call the root, e.g. "layout root".
    let role: String
    private let fd: Int32

    /// How symlinks met on the way are treated.
    enum Symlinks {
        /// Followed while they stay inside the root (image layouts).
        case followInside
        /// Refused: the caller listed real directories and files (a tree being archived), so a
        /// symlink now means the tree changed underneath it.
        case refuse
    }

    init(_ path: String, role: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError.io("open directory", path: path) }
        self.fd = fd
        self.path = path
        self.role = role
    }

    deinit { Glibc.close(fd) }

    /// The root's `fstat`.
    func status() throws -> stat {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BlobStoreError.io("fstat", path: path) }
        return st
    }

    /// Opens `relative` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` are added). With
    /// `O_DIRECTORY` in `flags` the path may name a directory, the root included.
    func open(_ relative: String, flags: Int32 = O_RDONLY, symlinks: Symlinks = .followInside) throws -> FileHandle {
        let shown = path + "/" + relative
        if relative.hasPrefix("/") { throw escape(relative, "it is an absolute path") }
        if relative.utf8.contains(0) { throw BlobStoreError(.invalidArgument, "\(String(reflecting: relative)) contains a NUL byte") }
        var pending = Array(relative.split(separator: "/").map(String.init).reversed())
        var opened: [Int32] = [] // directories below the root, innermost last
        defer { opened.forEach { Glibc.close($0) } }
        var followed = 0
        while let name = pending.popLast() {
            if name == "." { continue }
            if name == ".." {
                guard let innermost = opened.popLast() else { throw escape(relative, "it climbs above it with \"..\"") }
                Glibc.close(innermost)
                continue
            }
            let parent = opened.last ?? fd
            let isLast = pending.isEmpty
            let child = openat(parent, name, (isLast ? flags : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                if isLast { return FileHandle(adopting: child, path: shown) }
                opened.append(child)
                continue
            }
            let code = errno
            // O_NOFOLLOW fails with ELOOP on a symlink (ENOTDIR for some with O_DIRECTORY).
            guard code == ELOOP || code == ENOTDIR, let bytes = Self.readLink(parent, name) else {
                throw BlobStoreError.io("open", path: shown, errno: code)
            }
            let target = String(decoding: bytes, as: UTF8.self)
            guard symlinks == .followInside else {
                throw BlobStoreError(.invalidArgument, "\(shown) goes through the symbolic link \(name) -> \(target): the tree changed while it was read")
            }
            if target.hasPrefix("/") { throw escape(relative, "it goes through the symbolic link \(name) -> \(target), an absolute path") }
            followed += 1
            guard followed <= 40 else { throw BlobStoreError(.invalidArgument, "\(shown): too many levels of symbolic links") }
            pending += target.split(separator: "/").map(String.init).reversed()
        }
        // Every component is consumed: the path names the root or a directory already opened.
        guard flags & O_DIRECTORY != 0 else { throw BlobStoreError(.invalidArgument, "\(shown) is a directory") }
        let copy = dup(opened.last ?? fd)
        guard copy >= 0 else { throw BlobStoreError.io("dup", path: shown) }
        return FileHandle(adopting: copy, path: shown)
    }

    /// Like `open`, but nil when some component does not exist.
    func openIfPresent(_ relative: String, flags: Int32 = O_RDONLY, symlinks: Symlinks = .followInside) throws -> FileHandle? {
        do {
            return try open(relative, flags: flags, symlinks: symlinks)
        } catch let error as BlobStoreError where error.errno == ENOENT {
            return nil
        }
    }

    private func escape(_ relative: String, _ reason: String) -> BlobStoreError {
        BlobStoreError(.invalidArgument, "\(relative) escapes the \(role) \(path): \(reason)")
    }

    /// The target of the symlink `name` in directory `dir`, nil when it is not a symlink.
    static func readLink(_ dir: Int32, _ name: String) -> [UInt8]? {
        var capacity = 256
        while true {
            var bytes = [UInt8](repeating: 0, count: capacity)
            let n = bytes.withUnsafeMutableBytes { readlinkat(dir, name, $0.baseAddress!.assumingMemoryBound(to: CChar.self), capacity) }
            guard n >= 0 else { return nil }
            if n < capacity { return Array(bytes[..<n]) }
            capacity *= 2
        }
    }
}
