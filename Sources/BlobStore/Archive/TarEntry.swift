/// One member of a tar archive as callers see it: the ustar header with every extension
/// (GNU long names, PAX records, global PAX records) already applied.
///
/// `path` and `linkTarget` are exactly as archived (a directory usually ends in `/`, members
/// of `tar -C dir .` start with `./`); `TarReader` checks them, `TarWriter` does not.
public struct TarEntry: Sendable, Equatable {
    public enum Kind: Sendable, Hashable {
        case regular, hardLink, symlink, characterDevice, blockDevice, directory, fifo
        /// A type this library does not interpret (GNU `D`, `V`, vendor types): its data, if
        /// any, is still readable.
        case other(UInt8)

        /// The ustar type flag; `'0'` for regular files, `'\0'`/`'7'` read as regular too.
        public init(typeflag: UInt8) {
            switch typeflag {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): self = .regular
            case UInt8(ascii: "1"): self = .hardLink
            case UInt8(ascii: "2"): self = .symlink
            case UInt8(ascii: "3"): self = .characterDevice
            case UInt8(ascii: "4"): self = .blockDevice
            case UInt8(ascii: "5"): self = .directory
            case UInt8(ascii: "6"): self = .fifo
            default: self = .other(typeflag)
            }
        }

        public var typeflag: UInt8 {
            switch self {
            case .regular: UInt8(ascii: "0")
            case .hardLink: UInt8(ascii: "1")
            case .symlink: UInt8(ascii: "2")
            case .characterDevice: UInt8(ascii: "3")
            case .blockDevice: UInt8(ascii: "4")
            case .directory: UInt8(ascii: "5")
            case .fifo: UInt8(ascii: "6")
            case .other(let flag): flag
            }
        }

        /// Whether members of this kind carry data after the header. Links, directories,
        /// devices and fifos never do, whatever their size field says (as Go's archive/tar,
        /// which wrote and extracts most container layers).
        public var hasData: Bool {
            switch self {
            case .regular, .other: true
            default: false
            }
        }
    }

    public var path: String
    public var kind: Kind
    /// Permission bits (`0o7777`); the file type is `kind`.
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    /// Bytes of data; always 0 for kinds without data.
    public var size: UInt64
    /// Modification time, seconds since the epoch, and the sub-second part PAX can carry.
    public var mtime: Int64
    public var mtimeNanoseconds: UInt32
    /// The symlink's target, or the archived path a hard link points at.
    public var linkTarget: String
    public var uname: String
    public var gname: String
    public var devMajor: UInt32
    public var devMinor: UInt32
    /// Extended attributes (PAX `SCHILY.xattr.<name>`); values are raw bytes because
    /// attributes such as `security.capability` are binary.
    public var xattrs: [String: [UInt8]]
    /// PAX records no field above stands for (`atime`, `ctime`, `LIBARCHIVE.*`, ...), kept
    /// so a rewrite can carry them over.
    public var paxRecords: [String: String]

    public init(path: String, kind: Kind, size: UInt64 = 0, mode: UInt32? = nil,
                uid: Int = 0, gid: Int = 0, mtime: Int64 = 0, mtimeNanoseconds: UInt32 = 0,
                linkTarget: String = "", uname: String = "", gname: String = "",
                devMajor: UInt32 = 0, devMinor: UInt32 = 0,
                xattrs: [String: [UInt8]] = [:], paxRecords: [String: String] = [:]) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode ?? (kind == .directory ? 0o755 : 0o644)
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.mtimeNanoseconds = mtimeNanoseconds
        self.linkTarget = linkTarget
        self.uname = uname
        self.gname = gname
        self.devMajor = devMajor
        self.devMinor = devMinor
        self.xattrs = xattrs
        self.paxRecords = paxRecords
    }
}
