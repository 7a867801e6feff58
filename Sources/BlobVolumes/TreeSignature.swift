import BlobStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A digest of a directory tree's metadata: every entry's path, type, mode, owner, size,
/// inode, and modification and change times. Any write, rename, chmod or chown changes a
/// ctime the writer cannot set back, so an equal signature means an unchanged tree, found
/// with one lstat per entry instead of reading every byte.
enum TreeSignature {
    static func of(_ root: String) throws -> String {
        var lines: [String] = []
        func walk(_ relative: String) throws {
            let path = relative.isEmpty ? root : root + "/" + relative
            var st = stat()
            guard lstat(path, &st) == 0 else { throw BlobStoreError(.io, "cannot stat \(path): \(String(cString: strerror(errno)))") }
            lines.append("\(relative)\t\(st.st_mode)\t\(st.st_uid):\(st.st_gid)\t\(st.st_size)\t\(st.st_ino)\t"
                         + "\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\t\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)")
            guard st.st_mode & S_IFMT == S_IFDIR else { return }
            for child in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                try walk(relative.isEmpty ? child : relative + "/" + child)
            }
        }
        try walk("")
        return SHA256Hasher.hash(Array(lines.joined(separator: "\n").utf8)).description
    }
}
