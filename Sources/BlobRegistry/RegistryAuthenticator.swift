import BlobStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import Metrics

/// Basic auth against an htpasswd file of bcrypt hashes, and static bearer tokens. Every
/// /v2/ request must carry one or the other when either is configured; a failure is the
/// spec's UNAUTHORIZED with a `WWW-Authenticate` challenge, so clients prompt or retry
/// with credentials.
///
/// Hardened against abuse: verified credentials are cached briefly (bcrypt once per client,
/// not per request); an unknown user costs a bcrypt too (the time taken does not tell which
/// user names exist); tokens are compared in constant time; a client address with too many
/// failures in a minute is answered 429 without any checking.
struct RegistryAuthenticator: RouterMiddleware {
    typealias Context = RegistryRequestContext
    let users: [String: String]
    /// SHA-256 of each token: equal-length values to compare in constant time.
    let tokenDigests: [[UInt8]]
    let realm: String
    /// A hash of a random password at the users' cost, checked when the user is unknown.
    let decoyHash: String
    let cache: CredentialCache
    let failures: AuthFailureLimiter
    /// bcrypt runs: with the cache, about one per client per `credentialCacheSeconds`.
    let passwordChecks = Counter(label: "blobstore_registry_password_checks_total")

    init(configuration: RegistryConfiguration.Auth, cacheSeconds: Double, failuresPerMinute: Int) throws {
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
        tokenDigests = (configuration.tokens ?? []).map { SHA256Hasher.hash(Array($0.utf8)).bytes }
        realm = configuration.realm ?? "blobstore"
        // "$2b$NN$…": the decoy costs what a real check costs.
        let cost = users.values.first.flatMap { UInt8($0.dropFirst(4).prefix(2)) } ?? 10
        decoyHash = Bcrypt.hash(UUID().uuidString, cost: cost)
        cache = CredentialCache(lifetime: cacheSeconds)
        failures = AuthFailureLimiter(perMinute: failuresPerMinute)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v2") else { return try await next(request, context) }
        guard let header = request.headers[.authorization] else { throw challenge() }
        let client = context.clientAddress
        if let wait = failures.blocked(client) {
            throw RegistryError.busy(.tooManyRequests, "too many failed authentications from \(client); retry in \(wait) s", retryAfter: wait, reason: "auth")
        }
        if try await verify(header) { return try await next(request, context) }
        failures.recordFailure(client)
        throw challenge()
    }

    private func challenge() -> RegistryError {
        RegistryError(.unauthorized, "authentication required", headers: [.wwwAuthenticate: "Basic realm=\"\(realm)\""])
    }

    private func verify(_ header: String) async throws -> Bool {
        if header.hasPrefix("Bearer ") {
            let presented = SHA256Hasher.hash(Array(header.utf8.dropFirst(7))).bytes
            // Every token is compared, whichever matches: the time says nothing.
            var matched = false
            for token in tokenDigests { matched = Self.constantTimeEqual(token, presented) || matched }
            return matched
        }
        guard header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6))),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return false }
        let user = String(text[..<colon]), password = String(text[text.index(after: colon)...])
        if users[user] != nil, cache.contains(user: user, password: password) { return true }
        let hash = users[user] ?? decoyHash
        passwordChecks.increment()
        let ok = try await Blocking.run { Bcrypt.verify(password, hash: hash) }
        guard ok, users[user] != nil else { return false }
        cache.insert(user: user, password: password)
        return true
    }

    /// Equal-length byte strings compared without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
