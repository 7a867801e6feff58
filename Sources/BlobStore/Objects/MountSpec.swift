/// A container mount as Docker users write it, with `-v` or `--mount`:
///
/// - `-v /path`: an anonymous volume, owned by the container and removed with it;
/// - `-v NAME:/path[:ro]`: a named volume (created if missing), never removed with it;
/// - `-v /host/path:/path[:ro]`: a bind mount of a host folder: recorded on the container,
///   no data stored, nothing to collect;
/// - `--mount type=volume|bind|tmpfs,source=…,target=…[,readonly]` (also `src`, `dst`,
///   `destination`, `ro`): the same three, and a tmpfs (recorded only).
public struct MountSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case volume, bind, tmpfs

        var code: UInt8 {
            switch self {
            case .volume: 0
            case .bind: 1
            case .tmpfs: 2
            }
        }

        init(code: UInt8) throws {
            switch code {
            case 0: self = .volume
            case 1: self = .bind
            case 2: self = .tmpfs
            default: throw BlobStoreError(.corrupt, "unknown mount kind \(code)")
            }
        }
    }

    public var kind: Kind
    /// A named volume's name; nil for an anonymous volume.
    public var volume: String?
    /// A bind mount's host path.
    public var source: String?
    /// Where it appears in the container.
    public var path: String
    public var readOnly: Bool

    /// `-v`'s forms.
    public init(parsing text: String) throws {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        readOnly = false
        if parts.count == 3 || (parts.count == 2 && ["ro", "rw"].contains(parts[1])) {
            guard let mode = parts.last, ["ro", "rw"].contains(mode) else {
                throw BlobStoreError(.invalidArgument, "mount \(text): the mode after the last ':' must be ro or rw")
            }
            readOnly = mode == "ro"
            parts.removeLast()
        }
        switch parts.count {
        case 1:
            kind = .volume
            path = parts[0]
        case 2 where parts[0].hasPrefix("/"):
            kind = .bind
            source = parts[0]
            path = parts[1]
        case 2:
            kind = .volume
            volume = parts[0]
            path = parts[1]
        default:
            throw BlobStoreError(.invalidArgument, "mount \(text): expected /path, NAME:/path or /host/path:/path, each with an optional :ro")
        }
        try check(text)
    }

    /// `--mount`'s comma-separated key=value form.
    public init(mountOption text: String) throws {
        var type: Kind = .volume
        var source: String?
        var target: String?
        readOnly = false
        for field in text.split(separator: ",") {
            let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
            let key = pair[0], value = pair.count > 1 ? pair[1] : nil
            switch key {
            case "type":
                guard let value, let t = Kind(rawValue: value) else {
                    throw BlobStoreError(.invalidArgument, "--mount \(text): type must be volume, bind or tmpfs")
                }
                type = t
            case "source", "src": source = value
            case "target", "dst", "destination": target = value
            case "readonly", "ro":
                switch value {
                case nil, "true", "1": readOnly = true
                case "false", "0": readOnly = false
                default: throw BlobStoreError(.invalidArgument, "--mount \(text): \(key)=\(value!) is not true or false")
                }
            default:
                throw BlobStoreError(.invalidArgument, "--mount \(text): unknown key \(key) (known: type, source, target, readonly)")
            }
        }
        guard let target else { throw BlobStoreError(.invalidArgument, "--mount \(text): a target is needed") }
        kind = type
        path = target
        switch type {
        case .volume: volume = source
        case .bind:
            guard let source else { throw BlobStoreError(.invalidArgument, "--mount \(text): a bind mount needs a source") }
            self.source = source
        case .tmpfs:
            if source != nil { throw BlobStoreError(.invalidArgument, "--mount \(text): a tmpfs has no source") }
        }
        try check(text)
    }

    private func check(_ text: String) throws {
        for p in [path] + (source.map { [$0] } ?? []) {
            let components = p.split(separator: "/")
            guard p.hasPrefix("/"), !components.contains(".."), !p.utf8.contains(0) else {
                throw BlobStoreError(.invalidArgument, "mount \(text): paths must be absolute and free of '..'")
            }
        }
        if let volume { try ObjectName.validate(volume, kind: "volume") }
    }
}
