import BlobStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt

/// Basic auth against an htpasswd file of bcrypt hashes, and static bearer tokens. Every
/// /v2/ request must carry one or the other when either is configured; a failure is the
/// spec's UNAUTHORIZED with a `WWW-Authenticate` challenge, so clients prompt or retry
/// with credentials.
struct RegistryAuthenticator<Context: RequestContext>: RouterMiddleware {
    let users: [String: String]
    let tokens: Set<String>
    let realm: String

    init(configuration: RegistryConfiguration.Auth) throws {
        var users: [String: String] = [:]
        if let path = configuration.htpasswd {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw RegistryConfigurationError("cannot read htpasswd file \(path)")
            }
            for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let hash = String(parts[1]).trimmingCharacters(in: .whitespaces)
                guard hash.hasPrefix("$2") else {
                    throw RegistryConfigurationError("htpasswd entry for \(parts[0]) is not bcrypt (use htpasswd -B)")
                }
                // htpasswd -B writes $2y$, the same algorithm as $2b$, which is all the
                // OpenBSD bcrypt behind Bcrypt.verify knows (with $2a$).
                users[String(parts[0])] = hash.hasPrefix("$2y$") ? "$2b$" + hash.dropFirst(4) : hash
            }
        }
        self.users = users
        tokens = Set(configuration.tokens ?? [])
        realm = configuration.realm ?? "blobstore"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v2") else { return try await next(request, context) }
        if let header = request.headers[.authorization] {
            if header.hasPrefix("Bearer "), tokens.contains(String(header.dropFirst(7))) {
                return try await next(request, context)
            }
            if header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6))),
               let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") {
                let user = String(text[..<colon]), password = String(text[text.index(after: colon)...])
                if let hash = users[user] {
                    let ok = try await Blocking.run { Bcrypt.verify(password, hash: hash) }
                    if ok { return try await next(request, context) }
                }
            }
        }
        throw RegistryError(.unauthorized, "authentication required", headers: [.wwwAuthenticate: "Basic realm=\"\(realm)\""])
    }
}
