import Foundation

/// Turns (bucket, key, query) into the URL to send and the path and Host header to sign,
/// from one encoding so the two always agree.
struct Endpoint: Sendable {
    let scheme: String
    let host: String
    let port: Int?
    /// The endpoint's own path, without a trailing '/' ("" for most).
    let basePath: String
    let pathStyle: Bool

    init(_ configuration: S3Configuration) throws {
        guard let components = URLComponents(string: configuration.endpoint),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty else {
            throw S3Error(kind: .invalidRequest, operation: "configure",
                          message: "endpoint must be an http:// or https:// URL, not \(configuration.endpoint)")
        }
        self.scheme = scheme
        self.host = host
        self.port = components.port
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        self.basePath = path
        self.pathStyle = configuration.pathStyle
    }

    struct Target {
        var url: String
        var encodedPath: String
        var hostHeader: String
    }

    func target(bucket: String, key: String?, query: [(name: String, value: String)]) -> Target {
        var hostName = pathStyle ? host : "\(bucket).\(host)"
        if hostName.contains(":") { hostName = "[\(hostName)]" }   // an IPv6 literal
        let defaultPort = scheme == "https" ? 443 : 80
        let hostHeader = port.map { $0 == defaultPort ? hostName : "\(hostName):\($0)" } ?? hostName
        var path = basePath
        if pathStyle { path += "/" + URIEncoding.encode(bucket) }
        if let key { path += "/" + URIEncoding.encodePath(key) }
        if path.isEmpty { path = "/" }
        // A parameter without value goes out bare (`?delete`), as the S3 documentation
        // writes it; its canonical form is still `delete=`.
        let queryString = query.map { item in
            item.value.isEmpty ? URIEncoding.encode(item.name)
                               : URIEncoding.encode(item.name) + "=" + URIEncoding.encode(item.value)
        }.joined(separator: "&")
        let url = "\(scheme)://\(hostHeader)\(path)" + (queryString.isEmpty ? "" : "?" + queryString)
        return Target(url: url, encodedPath: path, hostHeader: hostHeader)
    }
}
