import CXattr
#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes of an open file or directory (`flistxattr`/`fgetxattr`), for
/// archives that must keep them: file capabilities, overlayfs's opaque mark.
public enum ExtendedAttributes {
    /// Every attribute and its value; empty where the file system has none.
    public static func read(_ fd: Int32, path: String) throws -> [String: [UInt8]] {
        let size = flistxattr(fd, nil, 0)
        if size < 0 {
            if errno == ENOTSUP { return [:] }
            throw BlobStoreError.io("list extended attributes of", path: path)
        }
        guard size > 0 else { return [:] }
        var names = [CChar](repeating: 0, count: size)
        let listed = flistxattr(fd, &names, size)
        guard listed >= 0 else { throw BlobStoreError.io("list extended attributes of", path: path) }
        var attributes: [String: [UInt8]] = [:]
        for raw in names[..<listed].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let length = fgetxattr(fd, name, nil, 0)
            guard length >= 0 else {
                if errno == ENODATA { continue } // removed meanwhile
                throw BlobStoreError.io("read extended attribute \(name) of", path: path)
            }
            var value = [UInt8](repeating: 0, count: length)
            let got = value.withUnsafeMutableBytes { fgetxattr(fd, name, $0.baseAddress, length) }
            guard got >= 0 else { throw BlobStoreError.io("read extended attribute \(name) of", path: path) }
            attributes[name] = Array(value[..<got])
        }
        return attributes
    }

    public static func write(_ fd: Int32, _ name: String, _ value: [UInt8], path: String) throws {
        let result = value.withUnsafeBytes { fsetxattr(fd, name, $0.baseAddress, value.count, 0) }
        guard result == 0 else { throw BlobStoreError.io("set extended attribute \(name) of", path: path) }
    }
}
