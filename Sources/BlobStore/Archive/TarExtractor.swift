import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Unpacks a tar stream into an empty directory, never outside it: every member is created
/// relative to directory descriptors opened from the root without following symlinks, so a
/// member cannot write through a symlink an earlier member made (`etc -> /etc`, then
/// `etc/passwd`), and `..` or absolute names are refused by the reader before that.
/// Ownership, modes and modification times are restored; a directory's own mode and time
/// are set last, once nothing more is written inside it.
///
/// With `asLayer`, the stream is an image layer applied over what `root` already holds (the
/// layers below it): `.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory of what
/// the lower layers put there, and a member replaces whatever was at its path.
///
/// With `overlayUpper`, the stream is an image layer unpacked as an overlayfs upper
/// directory, to be stacked over its lower layers by overlayfs: `.wh.NAME` becomes a
/// whiteout (character device 0/0), `.wh..wh..opq` marks its directory opaque, and the
/// members' extended attributes are restored (what `TarWriter`'s `overlayUpper` archived).
public enum TarExtractor {
    public static func extract(_ reader: TarReader, into root: String, asLayer: Bool = false, overlayUpper: Bool = false) throws {
        precondition(!(asLayer && overlayUpper), "a layer is applied over its lowers or unpacked as an upper, not both")
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw BlobStoreError.io("open", path: root) }
        defer { close(rootFD) }
        var directories: [(path: String, entry: TarEntry)] = []
        var fromThisLayer = Set<String>()
        while let entry = try reader.next() {
            let path = entry.path.split(separator: "/").map(String.init).filter { $0 != "." }
            guard let name = path.last else { continue } // the archive's "./" itself
            guard !path.contains(".."), !entry.path.hasPrefix("/") else {
                throw BlobStoreError(.invalidArgument, "tar member \(entry.path) points outside the directory")
            }
            let parent = try openParent(rootFD, path.dropLast(), root: root)
            defer { close(parent) }
            if overlayUpper && name.hasPrefix(".wh.") {
                if name == ".wh..wh..opq" {
                    try ExtendedAttributes.write(parent, "trusted.overlay.opaque", Array("y".utf8), path: root + "/" + entry.path)
                } else {
                    guard mknodat(parent, String(name.dropFirst(4)), S_IFCHR | 0o000, 0) == 0 else {
                        throw BlobStoreError.io("mknod whiteout", path: root + "/" + entry.path)
                    }
                }
                continue
            }
            if asLayer {
                let directory = path.dropLast().joined(separator: "/")
                if name == ".wh..wh..opq" {
                    let prefix = directory.isEmpty ? "" : directory + "/"
                    for child in (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + directory)) ?? []
                    where !fromThisLayer.contains(prefix + child) {
                        try removeMember(root, prefix + child)
                    }
                    continue
                }
                if name.hasPrefix(".wh.") {
                    try removeMember(root, (directory.isEmpty ? "" : directory + "/") + name.dropFirst(4))
                    continue
                }
                let full = path.joined(separator: "/")
                fromThisLayer.insert(full)
                var st = stat()
                if fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0,
                   entry.kind != .directory || (st.st_mode & S_IFMT) != S_IFDIR {
                    try removeMember(root, full)
                }
            }
            switch entry.kind {
            case .directory:
                if mkdirat(parent, name, 0o700) != 0 && errno != EEXIST { throw BlobStoreError.io("mkdir", path: root + "/" + entry.path) }
                directories.append((path.joined(separator: "/"), entry))
                continue
            case .regular:
                let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw BlobStoreError.io("create", path: root + "/" + entry.path) }
                defer { close(fd) }
                try reader.readContent { bytes in
                    var done = 0
                    while done < bytes.count {
                        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
                        if n < 0 { if errno == EINTR { continue }; throw BlobStoreError.io("write", path: root + "/" + entry.path) }
                        done += n
                    }
                }
                fchown(fd, uid_t(entry.uid), gid_t(entry.gid))
                fchmod(fd, mode_t(entry.mode & 0o7777))
                if overlayUpper {
                    // After chown, which clears file capabilities.
                    for (attribute, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) {
                        try ExtendedAttributes.write(fd, attribute, value, path: root + "/" + entry.path)
                    }
                }
            case .symlink:
                guard symlinkat(entry.linkTarget, parent, name) == 0 else { throw BlobStoreError.io("symlink", path: root + "/" + entry.path) }
                fchownat(parent, name, uid_t(entry.uid), gid_t(entry.gid), AT_SYMLINK_NOFOLLOW)
            case .hardLink:
                let target = entry.linkTarget.split(separator: "/").map(String.init).filter { $0 != "." }
                guard let targetName = target.last, !target.contains("..") else {
                    throw BlobStoreError(.invalidArgument, "hard link \(entry.path) points outside the directory")
                }
                let targetParent = try openParent(rootFD, target.dropLast(), root: root)
                defer { close(targetParent) }
                guard linkat(targetParent, targetName, parent, name, 0) == 0 else {
                    throw BlobStoreError.io("link", path: root + "/" + entry.path)
                }
                continue // the link shares its target's inode: nothing of its own to set
            case .fifo, .characterDevice, .blockDevice:
                let type: mode_t = entry.kind == .fifo ? S_IFIFO : entry.kind == .characterDevice ? S_IFCHR : S_IFBLK
                let device = dev_t(entry.devMajor) << 8 | dev_t(entry.devMinor & 0xFF) | dev_t(entry.devMinor & ~0xFF) << 12
                guard mknodat(parent, name, type | mode_t(entry.mode & 0o7777), device) == 0 else {
                    throw BlobStoreError.io("mknod", path: root + "/" + entry.path)
                }
                fchownat(parent, name, uid_t(entry.uid), gid_t(entry.gid), AT_SYMLINK_NOFOLLOW)
            case .other:
                continue
            }
            setTime(parent, name, entry)
        }
        // Deepest first, so setting a parent's time comes after its children are done.
        for (path, entry) in directories.sorted(by: { $0.path.count > $1.path.count }) {
            let components = path.split(separator: "/").map(String.init)
            let parent = try openParent(rootFD, components.dropLast(), root: root)
            defer { close(parent) }
            let name = components.last!
            fchownat(parent, name, uid_t(entry.uid), gid_t(entry.gid), AT_SYMLINK_NOFOLLOW)
            fchmodat(parent, name, mode_t(entry.mode & 0o7777), 0)
            if overlayUpper && !entry.xattrs.isEmpty {
                let directory = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard directory >= 0 else { throw BlobStoreError.io("open", path: root + "/" + path) }
                defer { close(directory) }
                for (attribute, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) {
                    try ExtendedAttributes.write(directory, attribute, value, path: root + "/" + path)
                }
            }
            setTime(parent, name, entry)
        }
    }

    /// Removes what a lower layer left at `path` (a directory with all it holds). Its parent
    /// was just opened without following symlinks, so the path stays inside `root`.
    private static func removeMember(_ root: String, _ path: String) throws {
        let full = root + "/" + path
        var st = stat()
        guard lstat(full, &st) == 0 else { return }
        do {
            try FileManager.default.removeItem(atPath: full)
        } catch {
            throw BlobStoreError(.io, "cannot remove \(full) for the layer above it: \(error)")
        }
    }

    /// The directory holding a member, walked from the root one component at a time without
    /// following symlinks (a symlink there is an error: ELOOP or ENOTDIR), created as needed.
    private static func openParent(_ rootFD: Int32, _ components: ArraySlice<String>, root: String) throws -> Int32 {
        var fd = dup(rootFD)
        for component in components {
            var next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT {
                if mkdirat(fd, component, 0o755) != 0 && errno != EEXIST { close(fd); throw BlobStoreError.io("mkdir", path: root) }
                next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            close(fd)
            guard next >= 0 else {
                throw BlobStoreError(.invalidArgument, "tar member path goes through \(component), which is not a directory (a symlink?)")
            }
            fd = next
        }
        return fd
    }

    private static func setTime(_ parent: Int32, _ name: String, _ entry: TarEntry) {
        let time = timespec(tv_sec: Int(entry.mtime), tv_nsec: Int(entry.mtimeNanoseconds))
        var times = [time, time]
        utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW)
    }
}
