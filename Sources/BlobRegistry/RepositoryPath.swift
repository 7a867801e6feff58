import BlobStore

/// A request path under `/v2/`, split into the repository name and what is asked of it.
/// Names contain slashes, so the path is read from the end: the last `/blobs/`,
/// `/manifests/`, `/tags/list` or `/referrers/` separates the name from the rest.
enum RepositoryPath: Equatable {
    case base
    case blob(name: String, digest: String)
    case uploads(name: String)
    case upload(name: String, id: String)
    case manifest(name: String, reference: String)
    case tags(name: String)
    case referrers(name: String, digest: String)

    init?(_ path: String) {
        guard path.hasPrefix("/v2") else { return nil }
        var rest = String(path.dropFirst(3))
        if rest.isEmpty || rest == "/" { self = .base; return }
        guard rest.hasPrefix("/") else { return nil }
        rest.removeFirst()
        func split(_ marker: String) -> (String, String)? {
            guard let r = rest.range(of: marker, options: .backwards) else { return nil }
            return (String(rest[..<r.lowerBound]), String(rest[r.upperBound...]))
        }
        if rest.hasSuffix("/tags/list") {
            self = .tags(name: String(rest.dropLast("/tags/list".count)))
        } else if let (name, tail) = split("/blobs/uploads") {
            let id = tail.hasPrefix("/") ? String(tail.dropFirst()) : tail
            self = id.isEmpty ? .uploads(name: name) : .upload(name: name, id: id)
        } else if let (name, digest) = split("/blobs/") {
            self = .blob(name: name, digest: digest)
        } else if let (name, reference) = split("/manifests/") {
            self = .manifest(name: name, reference: reference)
        } else if let (name, digest) = split("/referrers/") {
            self = .referrers(name: name, digest: digest)
        } else {
            return nil
        }
    }

    var name: String? {
        switch self {
        case .base: return nil
        case .blob(let n, _), .uploads(let n), .upload(let n, _), .manifest(let n, _), .tags(let n), .referrers(let n, _): return n
        }
    }
}
