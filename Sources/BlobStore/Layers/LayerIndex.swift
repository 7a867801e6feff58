/// The members of a layer's tar, indexed once and kept in the store: what a merged root
/// file system needs to list, stat and read files without unpacking anything. Each regular
/// file's bytes are read straight from the (uncompressed) layer blob at `dataOffset`.
public struct LayerIndex: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Relative path, no leading `./` or `/`, no trailing `/`.
        public var path: String
        public var kind: TarEntry.Kind
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        public var mtime: Int64
        public var size: UInt64
        public var linkTarget: String
        public var devMajor: UInt32
        public var devMinor: UInt32
        public var xattrs: [String: [UInt8]]
        /// Where the member's data starts in the uncompressed layer.
        public var dataOffset: UInt64
    }

    /// The uncompressed tar the offsets refer to (the layer itself when it is plain).
    public var tar: Digest
    public var entries: [Entry]

    static let version: UInt8 = 1

    func encoded() -> [UInt8] {
        var w = BinaryWriter(capacity: 64 + entries.count * 96)
        w.u8(LayerIndex.version)
        w.digest(tar)
        w.u32(UInt32(entries.count))
        for e in entries {
            w.string(e.path)
            w.u8(e.kind.typeflag)
            w.u32(e.mode)
            w.u32(e.uid)
            w.u32(e.gid)
            w.u64(UInt64(bitPattern: e.mtime))
            w.u64(e.size)
            w.string(e.linkTarget)
            w.u32(e.devMajor)
            w.u32(e.devMinor)
            w.u32(UInt32(e.xattrs.count))
            for (k, v) in e.xattrs.sorted(by: { $0.key < $1.key }) {
                w.string(k)
                w.u32(UInt32(v.count))
                w.raw(v)
            }
            w.u64(e.dataOffset)
        }
        return w.bytes
    }

    init(tar: Digest, entries: [Entry]) {
        self.tar = tar
        self.entries = entries
    }

    init(decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "layer index")
        guard try r.u8() == LayerIndex.version else { throw BlobStoreError(.unsupportedFormat, "layer index version is not supported") }
        tar = try r.digest()
        let count = Int(try r.u32())
        entries = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let path = try r.string()
            let kind = TarEntry.Kind(typeflag: try r.u8())
            let mode = try r.u32(), uid = try r.u32(), gid = try r.u32()
            let mtime = Int64(bitPattern: try r.u64())
            let size = try r.u64()
            let link = try r.string()
            let major = try r.u32(), minor = try r.u32()
            var xattrs: [String: [UInt8]] = [:]
            for _ in 0..<Int(try r.u32()) {
                let k = try r.string()
                xattrs[k] = try r.raw(Int(try r.u32()))
            }
            let offset = try r.u64()
            entries.append(Entry(path: path, kind: kind, mode: mode, uid: uid, gid: gid, mtime: mtime, size: size,
                                 linkTarget: link, devMajor: major, devMinor: minor, xattrs: xattrs, dataOffset: offset))
        }
    }
}
