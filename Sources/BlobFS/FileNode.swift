import BlobStore
#if canImport(Glibc)
import Glibc
#endif

/// What a path of the mount resolves to.
enum FileNode {
    /// A directory whose listing is computed (blobs, images, a layout's folders).
    case directory(inode: UInt64, entries: () throws -> [String])
    /// A whole blob of the store.
    case blob(Digest, size: UInt64)
    /// Small generated content (oci-layout, index.json).
    case generated([UInt8], inode: UInt64)
    /// A node of an image's merged root file system.
    case rootfs(MergedTree.Node)

    /// Fills `st` like lstat(2) would.
    func fill(_ st: inout stat, mtime: Int64) {
        st = stat()
        st.st_uid = 0
        st.st_gid = 0
        st.st_blksize = 4096
        switch self {
        case .directory(let inode, _):
            st.st_mode = S_IFDIR | 0o555
            st.st_nlink = 2
            st.st_ino = UInt(inode)
            st.st_mtim.tv_sec = Int(mtime)
        case .blob(let d, let size):
            st.st_mode = S_IFREG | 0o444
            st.st_nlink = 1
            st.st_size = Int(size)
            st.st_ino = UInt(FileNode.inode(for: d))
            st.st_mtim.tv_sec = Int(mtime)
        case .generated(let bytes, let inode):
            st.st_mode = S_IFREG | 0o444
            st.st_nlink = 1
            st.st_size = bytes.count
            st.st_ino = UInt(inode)
            st.st_mtim.tv_sec = Int(mtime)
        case .rootfs(let n):
            let type: mode_t
            switch n.kind {
            case .directory: type = S_IFDIR
            case .symlink: type = S_IFLNK
            case .characterDevice: type = S_IFCHR
            case .blockDevice: type = S_IFBLK
            case .fifo: type = S_IFIFO
            default: type = S_IFREG
            }
            st.st_mode = type | mode_t(n.mode & 0o7777)
            st.st_nlink = UInt(max(n.links, 1))
            st.st_uid = n.uid
            st.st_gid = n.gid
            st.st_size = n.kind == .symlink ? n.linkTarget.utf8.count : (n.kind == .directory ? 4096 : Int(n.size))
            st.st_ino = UInt(n.inode)
            st.st_mtim.tv_sec = Int(n.mtime)
            if n.kind == .characterDevice || n.kind == .blockDevice {
                st.st_rdev = FileNode.makedev(n.devMajor, n.devMinor)
            }
        }
        st.st_blocks = (st.st_size + 511) / 512
    }

    /// glibc's dev_t layout (makedev is a macro Swift cannot call).
    static func makedev(_ major: UInt32, _ minor: UInt32) -> UInt {
        let ma = UInt(major), mi = UInt(minor)
        return ((ma & 0xFFFF_F000) << 32) | ((ma & 0xFFF) << 8) | ((mi & 0xFFFF_FF00) << 12) | (mi & 0xFF)
    }

    /// A blob's inode, from its digest (collisions at 2^-63 odds).
    static func inode(for d: Digest) -> UInt64 { (d.w0 >> 2) | (1 << 62) }

    /// A stable inode for a generated path.
    static func inode(forPath path: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in path.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return (h >> 3) | (1 << 61)
    }
}
