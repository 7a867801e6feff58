/// A volume: named, or anonymous (created for one container and removed with it).
public struct VolumeInfo: Sendable, Equatable, Codable {
    public var name: String
    public var anonymous: Bool
    /// The volume's content as a tar blob, once something was imported into it.
    public var snapshot: Digest?
    /// Its earlier snapshots, oldest first: version 1 is `history[0]`, and the current
    /// snapshot is version `history.count + 1`. Each holds a reference, like `snapshot`.
    public var history: [Digest] = []
    /// Engines that have it mounted right now (e.g. "docker-plugin"): like `users`, a held
    /// volume is neither removed nor pruned. A set, so a holder that retries after a crash
    /// never counts twice.
    public var holds: [String] = []
    /// Containers that mount it.
    public var users: UInt64
    public var createdAt: UInt64

    func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.u8(anonymous ? 1 : 0)
        w.u8(snapshot == nil ? 0 : 1)
        w.digest(snapshot ?? Digest(w0: 0, w1: 0, w2: 0, w3: 0))
        w.u64(users)
        w.u64(createdAt)
        w.u32(UInt32(history.count))
        for d in history { w.digest(d) }
        w.u32(UInt32(holds.count))
        for h in holds { w.string(h) }
        return w.bytes
    }

    /// Every snapshot the volume holds a reference to: its history, then the current one.
    public var versions: [Digest] { history + (snapshot.map { [$0] } ?? []) }

    init(name: String, anonymous: Bool, snapshot: Digest?, users: UInt64, createdAt: UInt64) {
        self.name = name
        self.anonymous = anonymous
        self.snapshot = snapshot
        self.users = users
        self.createdAt = createdAt
    }

    package init(name: String, decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "volume \(name)")
        self.name = name
        anonymous = try r.u8() != 0
        let has = try r.u8() != 0
        let d = try r.digest()
        snapshot = has ? d : nil
        users = try r.u64()
        createdAt = try r.u64()
        if r.remaining > 0 { // records written before versions were kept end here
            for _ in 0..<Int(try r.u32()) { history.append(try r.digest()) }
            for _ in 0..<Int(try r.u32()) { holds.append(try r.string()) }
        }
    }
}

/// A container: its image, its read-write layer (the last committed diff) and its mounts.
public struct ContainerInfo: Sendable, Equatable, Codable {
    public var name: String
    public var image: String
    public var manifest: Digest
    public var diff: Digest?
    public var mounts: [Mount]
    public var createdAt: UInt64

    public struct Mount: Sendable, Equatable, Codable {
        /// The volume's name (`kind == .volume` only; empty otherwise).
        public var volume: String
        /// Where it appears in the container.
        public var path: String
        public var anonymous: Bool
        public var kind: MountSpec.Kind = .volume
        /// A bind mount's host path.
        public var source: String?
        public var readOnly = false
    }

    func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.string(image)
        w.digest(manifest)
        w.u8(diff == nil ? 0 : 1)
        w.digest(diff ?? Digest(w0: 0, w1: 0, w2: 0, w3: 0))
        w.u64(createdAt)
        w.u32(UInt32(mounts.count))
        for m in mounts {
            w.string(m.volume)
            w.string(m.path)
            w.u8(m.anonymous ? 1 : 0)
        }
        // Added later, after the fields older records end with: kind, source, read-only.
        for m in mounts {
            w.u8(m.kind.code)
            w.string(m.source ?? "")
            w.u8(m.readOnly ? 1 : 0)
        }
        return w.bytes
    }

    init(name: String, image: String, manifest: Digest, diff: Digest?, mounts: [Mount], createdAt: UInt64) {
        self.name = name
        self.image = image
        self.manifest = manifest
        self.diff = diff
        self.mounts = mounts
        self.createdAt = createdAt
    }

    package init(name: String, decoding raw: UnsafeRawBufferPointer) throws {
        var r = BinaryReader(raw, what: "container \(name)")
        self.name = name
        image = try r.string()
        manifest = try r.digest()
        let has = try r.u8() != 0
        let d = try r.digest()
        diff = has ? d : nil
        createdAt = try r.u64()
        mounts = []
        for _ in 0..<Int(try r.u32()) {
            mounts.append(Mount(volume: try r.string(), path: try r.string(), anonymous: try r.u8() != 0))
        }
        if r.remaining > 0 {
            for i in mounts.indices {
                mounts[i].kind = try MountSpec.Kind(code: try r.u8())
                let source = try r.string()
                mounts[i].source = source.isEmpty ? nil : source
                mounts[i].readOnly = try r.u8() != 0
            }
        }
    }
}
